/*
 * cmd.h: the control commands. cmd_exec() answers one request line
 * (without its LF) into R, now, or later when R->later is set (reply.h).
 */
#ifndef CAPSTATS_CMD_H
#define CAPSTATS_CMD_H

#include "reply.h"

void cmd_exec(char *line, struct reply *r);

#endif
