/*
 * config.c: the daemon's settings, set once at start-up by daemon.c and
 * only read after that.
 */
#include "config.h"

struct config cfg;
