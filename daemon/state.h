/*
 * state.h: the sessions that survive a restart, in a file saved whole on
 * each change the command layer makes and restored at start.
 */
#ifndef CAPSTATS_STATE_H
#define CAPSTATS_STATE_H

void state_init(const char *path);
int state_save(void);		/* -1, logged, when the file is not written */
void state_restore(void);

#endif
