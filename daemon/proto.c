/*
 * proto.c: the checks and names that both ends of the control protocol
 * share. Pure functions: no I/O, no allocation.
 */
#include <string.h>

#include "proto.h"

static const char *const statuses[] = {
#define X(e, word) word,
	CTL_STATUSES
#undef X
};

const char *
ctl_status_word(enum ctl_status st)
{
	return st < CTL_NSTATUS ? statuses[st] : "internal";
}

enum ctl_status
ctl_status_parse(const char *word)
{
	int i;

	for (i = 0; i < CTL_NSTATUS; i++)
		if (strcmp(word, statuses[i]) == 0)
			return i;
	return CTL_NSTATUS;
}

bool
ctl_printable(const char *buf, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if ((unsigned char)buf[i] < 0x20 || (unsigned char)buf[i] > 0x7e)
			return false;
	return true;
}

bool
ctl_valid_name(const char *s)
{
	size_t n = strlen(s);

	return n >= 1 && n <= CAPSTATS_NAME_MAX && strspn(s,
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") == n;
}

bool
ctl_valid_iface(const char *s)
{
	size_t n = strlen(s);

	return n >= 1 && n <= CAPSTATS_IFACE_MAX && ctl_printable(s, n) &&
	    strpbrk(s, "/ ") == NULL && strcmp(s, ".") != 0 && strcmp(s, "..") != 0;
}

bool
ctl_valid_filter(const char *s)
{
	size_t n = strlen(s);

	return n <= CTL_FILTER_MAX && ctl_printable(s, n);
}
