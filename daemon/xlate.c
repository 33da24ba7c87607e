/*
 * xlate.c: classic BPF to one eBPF socket filter that counts. Owns the
 * instruction encoding and the stack layout of the emitted program. Never
 * makes a system call, keeps no state between calls and prints nothing:
 * every refusal is a reason string for the caller.
 */
#include <linux/bpf.h>
#include <linux/filter.h>

#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xlate.h"

/* Registers of the emitted program; R6 to R9 survive helper calls. */
#define R_CTX		BPF_REG_6	/* the socket buffer */
#define R_A		BPF_REG_7	/* classic A: a zero-extended u32 */
#define R_X		BPF_REG_8	/* classic X: likewise */
#define R_COUNTERS	BPF_REG_9	/* the map value */

/*
 * The stack, below the frame pointer R10:
 *	  -8	u64	 the packet's wire length
 *	 -12	u32	 the map key, 0
 *	 -76	u32[16]	 classic scratch memory M[]
 *	 -88	u64	 one load that the prefix copy does not hold
 *	-218	u8[128]	 the prefix copy: the packet's first bytes
 * The verifier wants aligned stack loads; the prefix is placed so that the
 * network header after an Ethernet header (byte 14) is 4-aligned, and most
 * header fields are then a single load.
 */
#define OFF_WIRELEN	(-8)
#define OFF_KEY		(-12)
#define OFF_MEM		(-76)
#define OFF_SLOW	(-88)
#define PREFIX_MAX	128		/* a power of two: see emit_prefix() */
#define OFF_PREFIX	(OFF_SLOW - PREFIX_MAX - 2)

/*
 * Below the copy, for a family (see emit_family()):
 *	-232	u64	 the constant the members are tried with
 *	-240	u64	 the members' entry in the family's map
 *	-244	u32	 the key looked up
 *	-256 - 8j u64	 what A held at site j, or ~0 where not reached
 */
#define OFF_PARAM	(-232)
#define OFF_VALUE	(-240)
#define OFF_FKEY	(-244)
#define OFF_SITE(j)	(-256 - 8 * (int)(j))

_Static_assert(OFF_PARAM + 8 <= OFF_PREFIX, "below the prefix copy");
_Static_assert(OFF_SITE(XLATE_SITES_MAX - 1) >= -512, "within the stack");
_Static_assert((PREFIX_MAX & (PREFIX_MAX - 1)) == 0, "a power of 2");
_Static_assert(OFF_PREFIX >= -512, "an eBPF stack has 512 bytes");
_Static_assert((OFF_PREFIX + 14) % 4 == 0, "byte 14 of the copy: 4-aligned");
_Static_assert(XLATE_SLOTS_MAX * sizeof(struct xlate_count) <= 32768,
    "a per-CPU value has at most 32 KiB; a load reaches 32767 bytes");

/*
 * Whether a load is within the packet is asked of a length loaded afresh
 * from the socket buffer each time, never of a register kept for it: the
 * verifier would learn that register's range from each test and, deciding
 * later tests from it, track it exactly; paths through one filter that
 * tested different lengths would then be verified apart through every
 * filter that follows.
 */
#define SKB_LEN		offsetof(struct __sk_buff, len)

#define PROG_INSNS_MAX	1000000		/* BPF_COMPLEXITY_LIMIT_INSNS */

/* Labels of one filter: classic instructions 0..len-1, then these two. */
#define LBL_MATCH(len)	(len)
#define LBL_REJECT(len)	((len) + 1)

struct fixup {
	size_t		 at;		/* the jump instruction */
	unsigned	 label;
};

/* What checking one filter learns, for the emitter. */
struct scan {
	uint8_t		*reach;		/* per instruction: reached */
	uint64_t	 abs_end;	/* past the furthest fixed load */
	bool		 ind;		/* reads at X + k */
	uint32_t	 init;		/* V_A, V_X: read before written */
};

struct emit {
	struct bpf_insn	*insn;
	size_t		 len, cap;
	struct fixup	*fix;		/* jumps to this filter's labels */
	size_t		 nfix, fixcap;
	size_t		*at;		/* per label of the current filter */
	bool		 used[2];	/* jumps to match, to reject */
	unsigned	 flen;		/* the current filter's length */
	unsigned	 prefix;	/* the prefix copy's size, or 0 */
	const uint8_t	*site;		/* a family's sites, or NULL */
	enum { PASS_PLAIN, PASS_COLLECT, PASS_PARAM } pass;
	bool		 nomem;
	char		*err;
	size_t		 errlen;
	bool		 failed;
};

static int	fail(struct emit *, const char *, ...)
    __attribute__((format(printf, 2, 3)));

static int
fail(struct emit *e, const char *fmt, ...)
{
	va_list ap;

	if (!e->failed) {
		va_start(ap, fmt);
		vsnprintf(e->err, e->errlen, fmt, ap);
		va_end(ap);
		e->failed = true;
	}
	return -1;
}

/* ---- encoding */

static size_t
put(struct emit *e, uint8_t code, uint8_t dst, uint8_t src, int16_t off,
    int32_t imm)
{
	struct bpf_insn *n;
	size_t cap;

	if (e->len == e->cap) {
		cap = e->cap ? e->cap * 2 : 256;
		n = e->nomem ? NULL : realloc(e->insn, cap * sizeof(*n));
		if (n == NULL) {
			e->nomem = true;
			return e->len;
		}
		e->insn = n;
		e->cap = cap;
	}
	n = &e->insn[e->len];
	memset(n, 0, sizeof(*n));
	n->code = code;
	n->dst_reg = dst;
	n->src_reg = src;
	n->off = off;
	n->imm = imm;
	return e->len++;
}

static void
alu32_k(struct emit *e, uint8_t op, uint8_t dst, uint32_t k)
{
	put(e, BPF_ALU | op | BPF_K, dst, 0, 0, (int32_t)k);
}

static void
alu32_x(struct emit *e, uint8_t op, uint8_t dst, uint8_t src)
{
	put(e, BPF_ALU | op | BPF_X, dst, src, 0, 0);
}

static void
alu64_k(struct emit *e, uint8_t op, uint8_t dst, int32_t k)
{
	put(e, BPF_ALU64 | op | BPF_K, dst, 0, 0, k);
}

static void
alu64_x(struct emit *e, uint8_t op, uint8_t dst, uint8_t src)
{
	put(e, BPF_ALU64 | op | BPF_X, dst, src, 0, 0);
}

static void
ldx(struct emit *e, uint8_t size, uint8_t dst, uint8_t src, int16_t off)
{
	put(e, BPF_LDX | BPF_MEM | size, dst, src, off, 0);
}

static void
stx(struct emit *e, uint8_t size, uint8_t dst, int16_t off, uint8_t src)
{
	put(e, BPF_STX | BPF_MEM | size, dst, src, off, 0);
}

static void
call(struct emit *e, int32_t helper)
{
	put(e, BPF_JMP | BPF_CALL, 0, 0, 0, helper);
}

static void
ret(struct emit *e, int32_t value)
{
	alu32_k(e, BPF_MOV, BPF_REG_0, (uint32_t)value);
	put(e, BPF_JMP | BPF_EXIT, 0, 0, 0, 0);
}

/* Network to host order, in place; the result is zero-extended. */
static void
from_be(struct emit *e, uint8_t reg, unsigned size)
{
	if (size > 1)
		put(e, BPF_ALU | BPF_END | BPF_TO_BE, reg, 0, 0,
		    (int32_t)size * 8);
}

static uint8_t
size_code(unsigned size)
{
	return size == 4 ? BPF_W : size == 2 ? BPF_H : size == 1 ? BPF_B :
	    BPF_DW;
}

/* A jump to a label of the current filter, resolved when it ends. */
static void
jump(struct emit *e, uint8_t code, uint8_t dst, uint8_t src, int32_t imm,
    unsigned label)
{
	struct fixup *n;
	size_t cap;

	if (e->nfix == e->fixcap) {
		cap = e->fixcap ? e->fixcap * 2 : 64;
		if ((n = realloc(e->fix, cap * sizeof(*n))) == NULL) {
			e->nomem = true;
			return;
		}
		e->fix = n;
		e->fixcap = cap;
	}
	if (label >= LBL_MATCH(e->flen))
		e->used[label - LBL_MATCH(e->flen)] = true;
	e->fix[e->nfix].at = put(e, code, dst, src, 0, imm);
	e->fix[e->nfix++].label = label;
}

static void
goto_label(struct emit *e, unsigned label)
{
	jump(e, BPF_JMP | BPF_JA, 0, 0, 0, label);
}

/* A forward jump within one sequence: emit it, then land() it. */
static size_t
skip(struct emit *e, uint8_t code, uint8_t dst, uint8_t src, int32_t imm)
{
	return put(e, code, dst, src, 0, imm);
}

static void
land(struct emit *e, size_t at)
{
	if (!e->nomem)
		e->insn[at].off = (int16_t)(e->len - at - 1);
}

static int
resolve(struct emit *e)
{
	size_t i, to, at;

	for (i = 0; i < e->nfix && !e->nomem; i++) {
		at = e->fix[i].at;
		to = e->at[e->fix[i].label];
		if (to - at - 1 > INT16_MAX)
			return fail(e, "too large: a jump spans more than %d "
			    "instructions", INT16_MAX);
		e->insn[at].off = (int16_t)(to - at - 1);
	}
	e->nfix = 0;
	return 0;
}

/* ---- checking a classic program */

static bool
valid_code(const struct sock_filter *in)
{
	switch (in->code) {
	case BPF_RET | BPF_K:
	case BPF_RET | BPF_A:
	case BPF_LD | BPF_W | BPF_ABS:
	case BPF_LD | BPF_H | BPF_ABS:
	case BPF_LD | BPF_B | BPF_ABS:
	case BPF_LD | BPF_W | BPF_IND:
	case BPF_LD | BPF_H | BPF_IND:
	case BPF_LD | BPF_B | BPF_IND:
	case BPF_LD | BPF_W | BPF_LEN:
	case BPF_LDX | BPF_W | BPF_LEN:
	case BPF_LDX | BPF_B | BPF_MSH:
	case BPF_LD | BPF_IMM:
	case BPF_LDX | BPF_IMM:
	case BPF_ALU | BPF_NEG:
	case BPF_MISC | BPF_TAX:
	case BPF_MISC | BPF_TXA:
	case BPF_JMP | BPF_JA:
		return true;
	case BPF_LD | BPF_MEM:
	case BPF_LDX | BPF_MEM:
	case BPF_ST:
	case BPF_STX:
		return in->k < BPF_MEMWORDS;
	}
	switch (in->code & ~BPF_X) {
	case BPF_JMP | BPF_JEQ:
	case BPF_JMP | BPF_JGT:
	case BPF_JMP | BPF_JGE:
	case BPF_JMP | BPF_JSET:
	case BPF_ALU | BPF_ADD:
	case BPF_ALU | BPF_SUB:
	case BPF_ALU | BPF_MUL:
	case BPF_ALU | BPF_OR:
	case BPF_ALU | BPF_AND:
	case BPF_ALU | BPF_XOR:
		return true;
	case BPF_ALU | BPF_DIV:
	case BPF_ALU | BPF_MOD:
		return BPF_SRC(in->code) == BPF_X || in->k != 0;
	case BPF_ALU | BPF_LSH:
	case BPF_ALU | BPF_RSH:
		return BPF_SRC(in->code) == BPF_X || in->k < 32;
	}
	return false;
}

/*
 * The __sk_buff field that an ancillary load at SKF_AD_OFF + OFF reads, as
 * the kernel's classic filter reads it whatever the load's size; SWAP when
 * the field is in network order and classic gives it in host order.
 * -1 for what cannot be translated; SKF_AD_ALU_XOR_X is handled apart.
 */
static int
anc_field(int32_t off, bool *swap)
{
	*swap = off == SKF_AD_PROTOCOL || off == SKF_AD_VLAN_TPID;
	switch (off) {
	case SKF_AD_PROTOCOL:
		return offsetof(struct __sk_buff, protocol);
	case SKF_AD_PKTTYPE:
		return offsetof(struct __sk_buff, pkt_type);
	case SKF_AD_IFINDEX:
		return offsetof(struct __sk_buff, ifindex);
	case SKF_AD_MARK:
		return offsetof(struct __sk_buff, mark);
	case SKF_AD_QUEUE:
		return offsetof(struct __sk_buff, queue_mapping);
	case SKF_AD_RXHASH:
		return offsetof(struct __sk_buff, hash);
	case SKF_AD_VLAN_TAG:
		return offsetof(struct __sk_buff, vlan_tci);
	case SKF_AD_VLAN_TAG_PRESENT:
		return offsetof(struct __sk_buff, vlan_present);
	case SKF_AD_VLAN_TPID:
		return offsetof(struct __sk_buff, vlan_proto);
	}
	return -1;
}

static unsigned
load_size(uint16_t code)
{
	return BPF_SIZE(code) == BPF_W ? 4 : BPF_SIZE(code) == BPF_H ? 2 : 1;
}

/*
 * A load at a constant offset. Those before the packet are ancillary data
 * (LD only: an MSH there is a load relative to the network header) or
 * relative to a header, which the kernel reads from paged data too, where
 * no helper of a socket filter follows it (see xlate.h): refused. Below
 * SKF_LL_OFF the kernel reads nothing and the filter rejects.
 */
static const char *
check_abs(const struct sock_filter *in, struct scan *sc)
{
	int32_t k = (int32_t)in->k;
	bool swap;

	if (k >= 0) {
		if (sc->abs_end < (uint64_t)in->k + load_size(in->code))
			sc->abs_end = (uint64_t)in->k + load_size(in->code);
		return NULL;
	}
	if (k >= SKF_AD_OFF && BPF_CLASS(in->code) == BPF_LD) {
		if (k - SKF_AD_OFF == SKF_AD_ALU_XOR_X ||
		    anc_field(k - SKF_AD_OFF, &swap) >= 0)
			return NULL;
		return "ancillary load not supported";
	}
	if (k >= SKF_NET_OFF)
		return "load relative to the network header (SKF_NET_OFF) "
		    "not supported";
	if (k >= SKF_LL_OFF)
		return "load relative to the link-layer header (SKF_LL_OFF) "
		    "not supported";
	return NULL;
}

/* Why instruction PC cannot be translated, or NULL. */
static const char *
check_insn(const struct sock_filter *f, unsigned len, unsigned pc,
    struct scan *sc)
{
	const struct sock_filter *in = &f[pc];
	const char *why;

	if (!valid_code(in))
		return "invalid instruction";
	switch (BPF_CLASS(in->code)) {
	case BPF_JMP:
		if (in->code == (BPF_JMP | BPF_JA))
			return in->k < len - pc - 1 ? NULL :
			    "jump outside the program (backward jumps are not "
			    "supported)";
		return in->jt < len - pc - 1 && in->jf < len - pc - 1 ? NULL :
		    "jump outside the program";
	case BPF_RET:
		return NULL;
	case BPF_LD:
	case BPF_LDX:
		if ((BPF_MODE(in->code) == BPF_ABS ||
		    BPF_MODE(in->code) == BPF_MSH) &&
		    (why = check_abs(in, sc)) != NULL)
			return why;
		if (BPF_MODE(in->code) == BPF_IND)
			sc->ind = true;
		break;
	}
	return pc + 1 < len ? NULL : "the program does not end with a return";
}

/*
 * Whether IN always rejects: a load at a constant offset below SKF_LL_OFF,
 * where the kernel reads nothing (those from there to 0 are refused or
 * ancillary). Nothing after it is reached that way.
 */
static bool
always_rejects(const struct sock_filter *in)
{
	int32_t k = (int32_t)in->k;

	switch (BPF_MODE(in->code)) {
	case BPF_ABS:
		return BPF_CLASS(in->code) == BPF_LD && k < SKF_LL_OFF;
	case BPF_MSH:
		return BPF_CLASS(in->code) == BPF_LDX && k < SKF_LL_OFF;
	}
	return false;
}

/* What flows through a filter: M[] slots 0 to 15, then A and X. */
#define V_A		(1u << BPF_MEMWORDS)
#define V_X		(1u << (BPF_MEMWORDS + 1))

/* The registers IN reads and writes, as V_A and V_X. */
static void
regs_used(const struct sock_filter *in, uint32_t *rd, uint32_t *wr)
{
	uint32_t x = BPF_SRC(in->code) == BPF_X ? V_X : 0;

	*rd = *wr = 0;
	switch (BPF_CLASS(in->code)) {
	case BPF_LD:
		*wr = V_A;
		if (BPF_MODE(in->code) == BPF_IND)
			*rd = V_X;
		else if (BPF_MODE(in->code) == BPF_ABS &&
		    in->k == (uint32_t)(SKF_AD_OFF + SKF_AD_ALU_XOR_X))
			*rd = V_A | V_X;
		break;
	case BPF_LDX:
		*wr = V_X;
		break;
	case BPF_ST:
		*rd = V_A;
		break;
	case BPF_STX:
		*rd = V_X;
		break;
	case BPF_ALU:
		*rd = V_A | (BPF_OP(in->code) == BPF_NEG ? 0 : x);
		*wr = V_A;
		break;
	case BPF_JMP:
		*rd = BPF_OP(in->code) == BPF_JA ? 0 : V_A | x;
		break;
	case BPF_RET:
		*rd = BPF_RVAL(in->code) == BPF_A ? V_A : 0;
		break;
	case BPF_MISC:
		*rd = BPF_MISCOP(in->code) == BPF_TAX ? V_A : V_X;
		*wr = BPF_MISCOP(in->code) == BPF_TAX ? V_X : V_A;
		break;
	}
}

/* The instructions that may run after IN, at PC: 0 to 2 of them in NEXT. */
static unsigned
successors(const struct sock_filter *in, unsigned pc, unsigned next[2])
{
	unsigned n = 0;

	if (in->code == (BPF_JMP | BPF_JA))
		next[n++] = pc + 1 + in->k;
	else if (BPF_CLASS(in->code) == BPF_JMP) {
		next[n++] = pc + 1 + in->jt;
		next[n++] = pc + 1 + in->jf;
	} else if (BPF_CLASS(in->code) != BPF_RET && !always_rejects(in))
		next[n++] = pc + 1;
	return n;
}

/*
 * Mark the instructions reached from the start, and follow what is
 * written on every path to each: a read of M[] must come after a write on
 * every path, as the kernel requires of classic filters, or the emitted
 * program would read stack that holds nothing, or an earlier filter's
 * scratch values. A and X start at 0; SC->init says which of them some
 * path reads before writing, so that only those are set.
 */
static const char *
check_flow(const struct sock_filter *f, unsigned len, struct scan *sc,
    uint32_t *valid, unsigned *where)
{
	const struct sock_filter *in;
	unsigned pc, next[2], n, i;
	uint32_t v, rd, wr;

	memset(sc->reach, 0, len);
	memset(valid, 0xff, len * sizeof(*valid));
	sc->reach[0] = 1;
	valid[0] = 0;
	for (pc = 0; pc < len; pc++) {
		if (!sc->reach[pc])
			continue;
		in = &f[pc];
		*where = pc;
		regs_used(in, &rd, &wr);
		sc->init |= rd & ~valid[pc];
		v = valid[pc] | wr;
		if (in->code == BPF_ST || in->code == BPF_STX)
			v |= 1u << in->k;
		if ((in->code == (BPF_LD | BPF_MEM) ||
		    in->code == (BPF_LDX | BPF_MEM)) && !(v & (1u << in->k)))
			return "reads scratch memory before writing it";
		n = successors(in, pc, next);
		for (i = 0; i < n; i++) {
			sc->reach[next[i]] = 1;
			valid[next[i]] &= v;
		}
	}
	return NULL;
}

/* ---- the values A, X and M[] may hold, for loads at X + k */

/* Every u32 from lo to hi. */
struct range {
	uint32_t	lo, hi;
};

#define RANGE_ALL	((struct range){ 0, UINT32_MAX })

/*
 * skb->len: the kernel's own loads take offsets and lengths as int, and
 * no packet comes near (GSO and GRO stop at 512 KiB).
 */
#define SKB_LEN_RANGE	((struct range){ 0, INT32_MAX })

/* Before an instruction: what each may hold on some path to it. */
struct vals {
	struct range	a, x, m[BPF_MEMWORDS];
	bool		set;		/* some path reaches it */
};

/* V with every bit below its highest set: the largest OR or XOR of it. */
static uint32_t
cover(uint32_t v)
{
	v |= v >> 1;
	v |= v >> 2;
	v |= v >> 4;
	v |= v >> 8;
	return v | v >> 16;
}

/*
 * LO to HI (each within 2^33 of 0) on 32 bits: the same values less a
 * multiple of 2^32 when both ends are in one such block, else all.
 */
static struct range
wrap(int64_t lo, int64_t hi)
{
	const int64_t bias = (int64_t)1 << 34;

	if ((lo + bias) >> 32 != (hi + bias) >> 32)
		return RANGE_ALL;
	return (struct range){ (uint32_t)lo, (uint32_t)hi };
}

/* The counts a shift by B uses: the kernel takes them modulo 32. */
static struct range
shift_count(struct range b)
{
	return b.hi < 32 ? b : (struct range){ 0, 31 };
}

/* A OP B, as the kernel computes it on 32 bits. */
static struct range
alu_range(uint8_t op, struct range a, struct range b)
{
	struct range c;

	switch (op) {
	case BPF_ADD:
		return wrap((int64_t)a.lo + b.lo, (int64_t)a.hi + b.hi);
	case BPF_SUB:
		return wrap((int64_t)a.lo - b.hi, (int64_t)a.hi - b.lo);
	case BPF_MUL:
		if ((uint64_t)a.hi * b.hi > UINT32_MAX)
			return RANGE_ALL;
		return (struct range){ a.lo * b.lo, a.hi * b.hi };
	case BPF_DIV:			/* by 0: the filter rejects */
		return (struct range){ a.lo / (b.hi ? b.hi : 1),
		    a.hi / (b.lo ? b.lo : 1) };
	case BPF_MOD:
		if (a.hi < b.lo)
			return a;
		return (struct range){ 0, b.hi && b.hi - 1 < a.hi ?
		    b.hi - 1 : a.hi };
	case BPF_AND:
		return (struct range){ 0, a.hi < b.hi ? a.hi : b.hi };
	case BPF_OR:
		return (struct range){ a.lo > b.lo ? a.lo : b.lo,
		    cover(a.hi | b.hi) };
	case BPF_XOR:
		return (struct range){ 0, cover(a.hi | b.hi) };
	case BPF_LSH:
		c = shift_count(b);
		if ((uint64_t)a.hi << c.hi > UINT32_MAX)
			return RANGE_ALL;
		return (struct range){ a.lo << c.lo, a.hi << c.hi };
	case BPF_RSH:
		c = shift_count(b);
		return (struct range){ a.lo >> c.hi, a.hi >> c.lo };
	case BPF_NEG:
		return wrap(-(int64_t)a.hi, -(int64_t)a.lo);
	}
	return RANGE_ALL;
}

/* What an ancillary load at SKF_AD_OFF + OFF gives. */
static struct range
anc_range(int32_t off, const struct vals *v)
{
	switch (off) {
	case SKF_AD_PKTTYPE:
		return (struct range){ 0, 7 };
	case SKF_AD_VLAN_TAG_PRESENT:
		return (struct range){ 0, 1 };
	case SKF_AD_PROTOCOL:
	case SKF_AD_QUEUE:
	case SKF_AD_VLAN_TAG:
	case SKF_AD_VLAN_TPID:
		return (struct range){ 0, 0xffff };
	case SKF_AD_ALU_XOR_X:
		return alu_range(BPF_XOR, v->a, v->x);
	}
	return RANGE_ALL;
}

/* What the load IN, of class BPF_LD, puts in A. */
static struct range
ld_range(const struct sock_filter *in, const struct vals *v)
{
	int32_t k = (int32_t)in->k;

	switch (BPF_MODE(in->code)) {
	case BPF_IMM:
		return (struct range){ in->k, in->k };
	case BPF_MEM:
		return v->m[in->k];
	case BPF_LEN:
		return SKB_LEN_RANGE;
	case BPF_ABS:
		if (k < 0 && k >= SKF_AD_OFF)
			return anc_range(k - SKF_AD_OFF, v);
		break;
	}
	return (struct range){ 0, (uint32_t)(((uint64_t)1 <<
	    8 * load_size(in->code)) - 1) };
}

/* What IN leaves in V. */
static void
step_vals(const struct sock_filter *in, struct vals *v)
{
	struct range k = { in->k, in->k };

	switch (BPF_CLASS(in->code)) {
	case BPF_LD:
		v->a = ld_range(in, v);
		break;
	case BPF_LDX:
		if (BPF_MODE(in->code) == BPF_MSH)
			v->x = (struct range){ 0, 60 };
		else if (BPF_MODE(in->code) == BPF_IMM)
			v->x = k;
		else if (BPF_MODE(in->code) == BPF_MEM)
			v->x = v->m[in->k];
		else
			v->x = SKB_LEN_RANGE;
		break;
	case BPF_ST:
		v->m[in->k] = v->a;
		break;
	case BPF_STX:
		v->m[in->k] = v->x;
		break;
	case BPF_ALU:
		v->a = alu_range(BPF_OP(in->code), v->a,
		    BPF_SRC(in->code) == BPF_X ? v->x : k);
		break;
	case BPF_MISC:
		if (BPF_MISCOP(in->code) == BPF_TAX)
			v->x = v->a;
		else
			v->a = v->x;
		break;
	}
}

/*
 * A's values on the branch (TAKEN or not) of a compare of A with B by OP:
 * false when none go there.
 */
static bool
refine(uint8_t op, bool taken, struct range b, struct range *a)
{
	int64_t lo = a->lo, hi = a->hi;

	switch (op) {
	case BPF_JGT:
		if (taken && lo <= b.lo)
			lo = (int64_t)b.lo + 1;
		else if (!taken && hi > b.hi)
			hi = b.hi;
		break;
	case BPF_JGE:
		if (taken && lo < b.lo)
			lo = b.lo;
		else if (!taken && hi >= b.hi)
			hi = (int64_t)b.hi - 1;
		break;
	case BPF_JEQ:
		if (taken && lo < b.lo)
			lo = b.lo;
		if (taken && hi > b.hi)
			hi = b.hi;
		break;
	}
	if (lo > hi)
		return false;
	*a = (struct range){ (uint32_t)lo, (uint32_t)hi };
	return true;
}

static void
join_range(struct range *to, struct range from)
{
	if (to->lo > from.lo)
		to->lo = from.lo;
	if (to->hi < from.hi)
		to->hi = from.hi;
}

static void
join_vals(struct vals *to, const struct vals *from)
{
	unsigned i;

	if (!to->set) {
		*to = *from;
		to->set = true;
		return;
	}
	join_range(&to->a, from->a);
	join_range(&to->x, from->x);
	for (i = 0; i < BPF_MEMWORDS; i++)
		join_range(&to->m[i], from->m[i]);
}

/*
 * Follow the values on every path, narrowing A at compares, and refuse a
 * load at X + k whose offset may fall from SKF_LL_OFF to 0: the kernel
 * computes it on 32 bits, and reads there relative to a header, from
 * paged data too, where no helper of a socket filter follows it. Below
 * SKF_LL_OFF it reads nothing: there and from 0 to INT_MAX the translation
 * does what the kernel does.
 */
static const char *
check_ranges(const struct sock_filter *f, unsigned len, const struct scan *sc,
    struct vals *v, unsigned *where)
{
	struct vals cur, to;
	struct range off;
	unsigned pc, next[2], n, i;

	memset(v, 0, len * sizeof(*v));
	v[0].set = true;	/* A and X are 0; M[] is written before read */
	for (pc = 0; pc < len; pc++) {
		if (!sc->reach[pc] || !v[pc].set)
			continue;	/* or no value comes here */
		*where = pc;
		cur = v[pc];
		if (BPF_CLASS(f[pc].code) == BPF_LD &&
		    BPF_MODE(f[pc].code) == BPF_IND) {
			off = alu_range(BPF_ADD, cur.x,
			    (struct range){ f[pc].k, f[pc].k });
			if (off.hi >= (uint32_t)SKF_LL_OFF)
				return "load at X + k that may fall before "
				    "the packet, relative to a header "
				    "(SKF_NET_OFF, SKF_LL_OFF), not supported";
		}
		step_vals(&f[pc], &cur);
		n = successors(&f[pc], pc, next);
		for (i = 0; i < n; i++) {
			to = cur;
			if (n == 2 && !refine(BPF_OP(f[pc].code), i == 0,
			    BPF_SRC(f[pc].code) == BPF_X ? cur.x :
			    (struct range){ f[pc].k, f[pc].k }, &to.a))
				continue;
			join_vals(&v[next[i]], &to);
		}
	}
	return NULL;
}

/* Follow a filter's paths: scratch memory, then loads at X + k. */
static const char *
check_paths(const struct sock_filter *f, unsigned len, struct scan *sc,
    unsigned *where, bool *nomem)
{
	const char *why;
	uint32_t *valid;
	struct vals *v;

	if ((valid = malloc(len * sizeof(*valid))) == NULL) {
		*nomem = true;
		return "out of memory";
	}
	why = check_flow(f, len, sc, valid, where);
	free(valid);
	if (why != NULL || !sc->ind)
		return why;
	if ((v = malloc(len * sizeof(*v))) == NULL) {
		*nomem = true;
		return "out of memory";
	}
	why = check_ranges(f, len, sc, v, where);
	free(v);
	return why;
}

/* Check one filter; 0, or -1 with the reason in E. */
static int
scan_filter(struct emit *e, const struct sock_filter *f, unsigned len,
    struct scan *sc)
{
	const char *why = NULL;
	unsigned pc;

	if (len == 0 || len > XLATE_FILTER_INSNS_MAX)
		return fail(e, "%u instructions: a filter has 1 to %d", len,
		    XLATE_FILTER_INSNS_MAX);
	for (pc = 0; pc < len; pc++)
		if ((why = check_insn(f, len, pc, sc)) != NULL)
			goto bad;
	why = check_paths(f, len, sc, &pc, &e->nomem);
	if (e->nomem)
		return fail(e, "out of memory");
	if (why == NULL)
		return 0;
bad:
	return fail(e, "instruction %u (code %#x, k %#x): %s", pc, f[pc].code,
	    f[pc].k, why);
}

/* ---- loads */

/* DST = the SIZE bytes at BASE + OFF, in network order, one at a time. */
static void
load_bytes(struct emit *e, uint8_t dst, uint8_t base, int16_t off,
    unsigned size)
{
	unsigned i;

	ldx(e, BPF_B, dst, base, off);
	for (i = 1; i < size; i++) {
		alu32_k(e, BPF_LSH, dst, 8);
		ldx(e, BPF_B, BPF_REG_1, base, (int16_t)(off + i));
		alu32_x(e, BPF_OR, dst, BPF_REG_1);
	}
}

/* DST = the SIZE bytes at R10 + OFF, with loads the verifier finds aligned. */
static void
load_stack(struct emit *e, uint8_t dst, int16_t off, unsigned size)
{
	if (off % (int)size == 0) {
		ldx(e, size_code(size), dst, BPF_REG_10, off);
		from_be(e, dst, size);
	} else if (size == 4 && off % 2 == 0) {
		ldx(e, BPF_H, dst, BPF_REG_10, off);
		from_be(e, dst, 2);
		alu32_k(e, BPF_LSH, dst, 16);
		ldx(e, BPF_H, BPF_REG_1, BPF_REG_10, (int16_t)(off + 2));
		from_be(e, BPF_REG_1, 2);
		alu32_x(e, BPF_OR, dst, BPF_REG_1);
	} else
		load_bytes(e, dst, BPF_REG_10, off, size);
}

/*
 * DST = the SIZE bytes at the offset in R2 (at most INT_MAX), copied by the
 * kernel, which fails outside the packet: then this filter rejects.
 */
static void
load_helper(struct emit *e, uint8_t dst, unsigned size)
{
	alu64_x(e, BPF_MOV, BPF_REG_1, R_CTX);
	alu64_x(e, BPF_MOV, BPF_REG_3, BPF_REG_10);
	alu64_k(e, BPF_ADD, BPF_REG_3, OFF_SLOW);
	alu64_k(e, BPF_MOV, BPF_REG_4, (int32_t)size);
	call(e, BPF_FUNC_skb_load_bytes);
	jump(e, BPF_JMP | BPF_JNE | BPF_K, BPF_REG_0, 0, 0,
	    LBL_REJECT(e->flen));
	ldx(e, size_code(size), dst, BPF_REG_10, OFF_SLOW);
	from_be(e, dst, size);
}

/*
 * DST = the SIZE bytes at constant offset K: from the prefix copy when the
 * packet has them and they are in it, copied by the kernel when past it.
 */
static void
load_abs(struct emit *e, uint8_t dst, uint32_t k, unsigned size)
{
	if (k > INT32_MAX) {
		goto_label(e, LBL_REJECT(e->flen));
		return;
	}
	if ((uint64_t)k + size <= e->prefix) {
		ldx(e, BPF_W, BPF_REG_1, R_CTX, SKB_LEN);
		jump(e, BPF_JMP | BPF_JLT | BPF_K, BPF_REG_1, 0,
		    (int32_t)(k + size), LBL_REJECT(e->flen));
		load_stack(e, dst, (int16_t)(OFF_PREFIX + (int)k), size);
		return;
	}
	alu64_k(e, BPF_MOV, BPF_REG_2, (int32_t)k);
	load_helper(e, dst, size);
}

/*
 * A = the SIZE bytes at X + K, computed on 32 bits as the kernel does: it
 * wraps, and checking made sure that an offset past INT_MAX, negative for
 * the kernel, is below SKF_LL_OFF, where it reads nothing. From the prefix
 * copy when they are all in it and in the packet, where the verifier
 * cannot tell the offset's alignment, so byte by byte; otherwise copied by
 * the kernel. The bound against a constant is the one the verifier needs
 * to let the stack be read at a variable offset.
 */
static void
load_ind(struct emit *e, uint32_t k, unsigned size)
{
	size_t slow = 0, short_copy = 0, done = 0;

	alu32_x(e, BPF_MOV, BPF_REG_2, R_X);
	if (k != 0)
		alu32_k(e, BPF_ADD, BPF_REG_2, k);
	if (e->prefix >= size) {
		slow = skip(e, BPF_JMP | BPF_JGT | BPF_K, BPF_REG_2, 0,
		    (int32_t)(e->prefix - size));
		ldx(e, BPF_W, BPF_REG_1, R_CTX, SKB_LEN);
		alu64_x(e, BPF_SUB, BPF_REG_1, BPF_REG_2);
		short_copy = skip(e, BPF_JMP | BPF_JSLT | BPF_K, BPF_REG_1, 0,
		    (int32_t)size);
		alu64_x(e, BPF_ADD, BPF_REG_2, BPF_REG_10);
		load_bytes(e, R_A, BPF_REG_2, OFF_PREFIX, size);
		done = skip(e, BPF_JMP | BPF_JA, 0, 0, 0);
		land(e, slow);
		land(e, short_copy);
	}
	jump(e, BPF_JMP | BPF_JGT | BPF_K, BPF_REG_2, 0, INT32_MAX,
	    LBL_REJECT(e->flen));
	load_helper(e, R_A, size);
	if (e->prefix >= size)
		land(e, done);
}

static void
load_anc(struct emit *e, int32_t off)
{
	bool swap;
	int field;

	if (off == SKF_AD_ALU_XOR_X) {
		alu32_x(e, BPF_XOR, R_A, R_X);
		return;
	}
	field = anc_field(off, &swap);
	ldx(e, BPF_W, R_A, R_CTX, (int16_t)field);
	if (swap)
		from_be(e, R_A, 2);
}

static void
emit_ld(struct emit *e, const struct sock_filter *in)
{
	int32_t k = (int32_t)in->k;

	switch (BPF_MODE(in->code)) {
	case BPF_ABS:
		if (k < 0 && k >= SKF_AD_OFF)
			load_anc(e, k - SKF_AD_OFF);
		else
			load_abs(e, R_A, in->k, load_size(in->code));
		break;
	case BPF_IND:
		load_ind(e, in->k, load_size(in->code));
		break;
	case BPF_LEN:
		ldx(e, BPF_W, R_A, R_CTX, SKB_LEN);
		break;
	case BPF_IMM:
		alu32_k(e, BPF_MOV, R_A, in->k);
		break;
	case BPF_MEM:
		ldx(e, BPF_W, R_A, BPF_REG_10, (int16_t)(OFF_MEM + 4 * in->k));
		break;
	}
}

static void
emit_ldx(struct emit *e, const struct sock_filter *in)
{
	switch (BPF_MODE(in->code)) {
	case BPF_MSH:
		load_abs(e, R_X, in->k, 1);
		if (always_rejects(in))
			break;		/* no code after the jump: unreached */
		alu32_k(e, BPF_AND, R_X, 0xf);
		alu32_k(e, BPF_LSH, R_X, 2);
		break;
	case BPF_LEN:
		ldx(e, BPF_W, R_X, R_CTX, SKB_LEN);
		break;
	case BPF_IMM:
		alu32_k(e, BPF_MOV, R_X, in->k);
		break;
	case BPF_MEM:
		ldx(e, BPF_W, R_X, BPF_REG_10, (int16_t)(OFF_MEM + 4 * in->k));
		break;
	}
}

/* ---- arithmetic, jumps, returns */

static void
emit_alu(struct emit *e, const struct sock_filter *in)
{
	uint8_t op = BPF_OP(in->code);

	if (op == BPF_NEG) {
		put(e, BPF_ALU | BPF_NEG, R_A, 0, 0, 0);
		return;
	}
	if (BPF_SRC(in->code) == BPF_K) {
		alu32_k(e, op, R_A, in->k);
		return;
	}
	/* The kernel's classic filter returns 0 on a division by 0. */
	if (op == BPF_DIV || op == BPF_MOD)
		jump(e, BPF_JMP | BPF_JEQ | BPF_K, R_X, 0, 0,
		    LBL_REJECT(e->flen));
	/* A shift takes its count modulo 32, in the kernel's filter too. */
	alu32_x(e, op, R_A, R_X);
}

/* The test inverted, for a conditional jump whose true branch is next. */
static uint8_t
invert(uint8_t op)
{
	switch (op) {
	case BPF_JEQ:
		return BPF_JNE;
	case BPF_JGT:
		return BPF_JLE;
	case BPF_JGE:
		return BPF_JLT;
	}
	return 0;
}

/*
 * A family's test of A against its members' constant: while collecting,
 * keep A for the lookup and go on as if no member matched; when trying a
 * constant, test A against it.
 */
static void
emit_site(struct emit *e, unsigned pc, unsigned t, unsigned f)
{
	if (e->pass == PASS_COLLECT)
		stx(e, BPF_DW, BPF_REG_10, (int16_t)OFF_SITE(e->site[pc] - 1),
		    R_A);
	else {
		ldx(e, BPF_DW, BPF_REG_1, BPF_REG_10, OFF_PARAM);
		jump(e, BPF_JMP32 | BPF_JEQ | BPF_X, R_A, BPF_REG_1, 0, t);
	}
	goto_label(e, f);
}

/* Compares are on 32 bits (JMP32), as classic constants are unsigned. */
static void
emit_jmp(struct emit *e, const struct sock_filter *in, unsigned pc)
{
	uint8_t op = BPF_OP(in->code), src = BPF_SRC(in->code);
	uint8_t reg = src == BPF_X ? R_X : 0;
	int32_t k = src == BPF_X ? 0 : (int32_t)in->k;
	unsigned t = pc + 1 + in->jt, f = pc + 1 + in->jf;

	if (e->site != NULL && e->site[pc] != 0) {
		emit_site(e, pc, t, f);
		return;
	}
	if (op == BPF_JA)
		goto_label(e, pc + 1 + in->k);
	else if (t == f)
		goto_label(e, t);
	else if (in->jf == 0)
		jump(e, BPF_JMP32 | op | src, R_A, reg, k, t);
	else if (in->jt == 0 && invert(op) != 0)
		jump(e, BPF_JMP32 | invert(op) | src, R_A, reg, k, f);
	else {
		jump(e, BPF_JMP32 | op | src, R_A, reg, k, t);
		goto_label(e, f);
	}
}

static void
emit_ret(struct emit *e, const struct sock_filter *in)
{
	if (BPF_RVAL(in->code) == BPF_A) {
		jump(e, BPF_JMP32 | BPF_JNE | BPF_K, R_A, 0, 0,
		    LBL_MATCH(e->flen));
		goto_label(e, LBL_REJECT(e->flen));
	} else
		goto_label(e, in->k != 0 ? LBL_MATCH(e->flen) :
		    LBL_REJECT(e->flen));
}

static void
emit_insn(struct emit *e, const struct sock_filter *in, unsigned pc)
{
	switch (BPF_CLASS(in->code)) {
	case BPF_LD:
		emit_ld(e, in);
		break;
	case BPF_LDX:
		emit_ldx(e, in);
		break;
	case BPF_ST:
		stx(e, BPF_W, BPF_REG_10, (int16_t)(OFF_MEM + 4 * in->k), R_A);
		break;
	case BPF_STX:
		stx(e, BPF_W, BPF_REG_10, (int16_t)(OFF_MEM + 4 * in->k), R_X);
		break;
	case BPF_ALU:
		emit_alu(e, in);
		break;
	case BPF_JMP:
		emit_jmp(e, in, pc);
		break;
	case BPF_RET:
		emit_ret(e, in);
		break;
	case BPF_MISC:
		if (BPF_MISCOP(in->code) == BPF_TAX)
			alu64_x(e, BPF_MOV, R_X, R_A);
		else
			alu64_x(e, BPF_MOV, R_A, R_X);
		break;
	}
}

/* ---- whole programs */

/* Add 1 and the wire length to counter INDEX. */
static void
emit_count(struct emit *e, uint32_t index)
{
	int16_t off = (int16_t)(index * sizeof(struct xlate_count));

	ldx(e, BPF_DW, BPF_REG_1, R_COUNTERS, off);
	alu64_k(e, BPF_ADD, BPF_REG_1, 1);
	stx(e, BPF_DW, R_COUNTERS, off, BPF_REG_1);
	ldx(e, BPF_DW, BPF_REG_1, R_COUNTERS, (int16_t)(off + 8));
	ldx(e, BPF_DW, BPF_REG_2, BPF_REG_10, OFF_WIRELEN);
	alu64_x(e, BPF_ADD, BPF_REG_1, BPF_REG_2);
	stx(e, BPF_DW, R_COUNTERS, (int16_t)(off + 8), BPF_REG_1);
}

/*
 * One filter: A and X start at 0 as in classic BPF, when some path reads
 * them first; then its reachable instructions, then what accepting does.
 * COUNT is the counter index, or -1 for the test form, which returns the
 * verdict.
 */
static int
emit_filter(struct emit *e, const struct sock_filter *f, unsigned len,
    const struct scan *sc, int64_t count)
{
	unsigned pc;

	e->flen = len;
	e->used[0] = e->used[1] = false;
	if ((e->at = calloc(len + 2, sizeof(*e->at))) == NULL) {
		e->nomem = true;
		return fail(e, "out of memory");
	}
	if (sc->init & V_A)
		alu32_k(e, BPF_MOV, R_A, 0);
	if (sc->init & V_X)
		alu32_k(e, BPF_MOV, R_X, 0);
	for (pc = 0; pc < len; pc++) {
		e->at[pc] = e->len;
		if (sc->reach[pc])
			emit_insn(e, &f[pc], pc);
	}
	e->at[LBL_MATCH(len)] = e->len;
	if (e->used[0] && count >= 0)
		emit_count(e, (uint32_t)count);
	else if (e->used[0])
		ret(e, 1);
	e->at[LBL_REJECT(len)] = e->len;
	if (e->used[1] && count < 0)
		ret(e, 0);
	resolve(e);
	free(e->at);
	e->at = NULL;
	return e->failed ? -1 : 0;
}

/*
 * Copy the packet's first bytes, as many as it has up to the prefix size,
 * to the stack once: most loads then read the copy, not call the kernel.
 * The verifier wants the length bounded to 1..PREFIX_MAX, and the stack
 * written the same way whatever the packet: ((len - 1) & (PREFIX_MAX - 1))
 * + 1 is len from 1 to PREFIX_MAX, and PREFIX_MAX for an empty packet,
 * where the copy then fails (the kernel zeroes the buffer) and no load
 * reads it, as each checks the packet's length. It cannot fail otherwise.
 */
static void
emit_prefix(struct emit *e)
{
	size_t small;

	ldx(e, BPF_W, BPF_REG_4, R_CTX, SKB_LEN);
	small = skip(e, BPF_JMP | BPF_JLE | BPF_K, BPF_REG_4, 0,
	    (int32_t)e->prefix);
	alu64_k(e, BPF_MOV, BPF_REG_4, (int32_t)e->prefix);
	land(e, small);
	alu64_k(e, BPF_ADD, BPF_REG_4, -1);
	alu64_k(e, BPF_AND, BPF_REG_4, PREFIX_MAX - 1);
	alu64_k(e, BPF_ADD, BPF_REG_4, 1);
	alu64_x(e, BPF_MOV, BPF_REG_1, R_CTX);
	alu64_k(e, BPF_MOV, BPF_REG_2, 0);
	alu64_x(e, BPF_MOV, BPF_REG_3, BPF_REG_10);
	alu64_k(e, BPF_ADD, BPF_REG_3, OFF_PREFIX);
	call(e, BPF_FUNC_skb_load_bytes);
}

/*
 * Look the counters up once per packet (key 0 holds them all) and keep
 * the wire length: what the filter sees, plus what libpcap adds, a header
 * of its own and the VLAN tag the kernel took out of the packet.
 */
static void
emit_counters(struct emit *e, int map_fd, const struct xlate_wire *wire)
{
	size_t found;

	put(e, BPF_ST | BPF_MEM | BPF_W, BPF_REG_10, 0, OFF_KEY, 0);
	put(e, BPF_LD | BPF_DW | BPF_IMM, BPF_REG_1, BPF_PSEUDO_MAP_FD, 0,
	    map_fd);
	put(e, 0, 0, 0, 0, 0);
	alu64_x(e, BPF_MOV, BPF_REG_2, BPF_REG_10);
	alu64_k(e, BPF_ADD, BPF_REG_2, OFF_KEY);
	call(e, BPF_FUNC_map_lookup_elem);
	found = skip(e, BPF_JMP | BPF_JNE | BPF_K, BPF_REG_0, 0, 0);
	ret(e, 0);
	land(e, found);
	alu64_x(e, BPF_MOV, R_COUNTERS, BPF_REG_0);
	ldx(e, BPF_W, BPF_REG_1, R_CTX, SKB_LEN);
	if (wire->hdr_len != 0)
		alu64_k(e, BPF_ADD, BPF_REG_1, (int32_t)wire->hdr_len);
	if (wire->vlan_len != 0) {
		ldx(e, BPF_W, BPF_REG_2, R_CTX,
		    offsetof(struct __sk_buff, vlan_present));	/* 0 or 1 */
		alu64_k(e, BPF_MUL, BPF_REG_2, (int32_t)wire->vlan_len);
		alu64_x(e, BPF_ADD, BPF_REG_1, BPF_REG_2);
	}
	stx(e, BPF_DW, BPF_REG_10, OFF_WIRELEN, BPF_REG_1);
}

/*
 * How much of the packet to copy up front: enough for every load at a
 * constant offset, or the whole PREFIX_MAX when loads at X + k may fall
 * anywhere in the headers.
 */
static unsigned
prefix_size(const struct scan *sc, size_t n)
{
	uint64_t want = 0;
	size_t i;

	for (i = 0; i < n; i++) {
		if (sc[i].ind)
			return PREFIX_MAX;
		if (want < sc[i].abs_end)
			want = sc[i].abs_end;
	}
	want = (want + 7) & ~(uint64_t)7;
	return want > PREFIX_MAX ? PREFIX_MAX : (unsigned)want;
}

static void
emit_init(struct emit *e, char *err, size_t errlen)
{
	memset(e, 0, sizeof(*e));
	e->err = err;
	e->errlen = errlen;
	if (errlen > 0)
		err[0] = '\0';
}

static int
emit_finish(struct emit *e, struct xlate_prog *out)
{
	free(e->fix);
	if (e->nomem && !e->failed)
		fail(e, "out of memory");
	if (!e->failed && e->len > PROG_INSNS_MAX)
		fail(e, "too large: %zu eBPF instructions, the kernel loads at "
		    "most %d", e->len, PROG_INSNS_MAX);
	if (e->failed) {
		free(e->insn);
		return -1;
	}
	out->insns = e->insn;
	out->len = e->len;
	return 0;
}

static void
free_scans(struct scan *sc, size_t n)
{
	size_t i;

	for (i = 0; i < n && sc != NULL; i++)
		free(sc[i].reach);
	free(sc);
}

/* Check the N filters, filling SC; 0 or -1 with the reason in E. */
static int
scan_all(struct emit *e, const struct xlate_filter *filters, size_t n,
    uint32_t slots, struct scan *sc)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (filters[i].index >= slots)
			return fail(e, "filter %zu: counter index %u, the map "
			    "has %u", i, filters[i].index, slots);
		sc[i].reach = malloc(filters[i].len ? filters[i].len : 1);
		if (sc[i].reach == NULL)
			return fail(e, "out of memory");
		if (scan_filter(e, filters[i].insns, filters[i].len,
		    &sc[i]) == -1) {
			char why[256];

			strlcpy(why, e->err, sizeof(why));
			e->failed = false;
			return fail(e, "filter %zu (counter %u): %s", i,
			    filters[i].index, why);
		}
	}
	return 0;
}

/* ---- families */

/*
 * What is reached when every site's test fails: the path every member
 * whose constant A never equals takes.
 */
static uint8_t *
collect_reach(const struct sock_filter *f, unsigned len, const uint8_t *site)
{
	unsigned pc, next[2], n, i;
	uint8_t *reach;

	if ((reach = calloc(len, 1)) == NULL)
		return NULL;
	reach[0] = 1;
	for (pc = 0; pc < len; pc++) {
		if (!reach[pc])
			continue;
		if (site[pc] != 0) {
			reach[pc + 1 + f[pc].jf] = 1;
			continue;
		}
		n = successors(&f[pc], pc, next);
		for (i = 0; i < n; i++)
			reach[next[i]] = 1;
	}
	return reach;
}

/* Whether a site test at PC may be one: JEQ with a constant, two ways out. */
static bool
site_ok(const struct sock_filter *in)
{
	return in->code == (BPF_JMP | BPF_JEQ | BPF_K) && in->jt != in->jf;
}

static unsigned
site_first(const uint8_t *site, unsigned len)
{
	unsigned pc;

	for (pc = 0; pc < len && site[pc] == 0; pc++)
		;
	return pc;
}

int
xlate_family(const struct sock_filter *f, const struct sock_filter *g,
    unsigned len, uint8_t *site)
{
	unsigned pc, n = 0;
	uint8_t *reach;
	int rc = 0;

	memset(site, 0, len);
	for (pc = 0; pc < len; pc++) {
		if (f[pc].code != g[pc].code || f[pc].jt != g[pc].jt ||
		    f[pc].jf != g[pc].jf)
			return -1;
		if (f[pc].k == g[pc].k)
			continue;
		if (!site_ok(&f[pc]) || n == XLATE_SITES_MAX)
			return -1;
		site[pc] = (uint8_t)++n;
	}
	if (n == 0)
		return -1;
	for (pc = 0; pc < len; pc++)
		if (site[pc] != 0 && (f[pc].k != f[site_first(site, len)].k ||
		    g[pc].k != g[site_first(site, len)].k))
			return -1;
	/* No member may accept on the path where no site test holds. */
	if ((reach = collect_reach(f, len, site)) == NULL)
		return -1;
	for (pc = 0; pc < len && rc == 0; pc++)
		if (reach[pc] && BPF_CLASS(f[pc].code) == BPF_RET &&
		    (BPF_RVAL(f[pc].code) != BPF_K || f[pc].k != 0))
			rc = -1;
	free(reach);
	return rc;
}

int
xlate_family_key(const struct sock_filter *skel, const uint8_t *site,
    const struct sock_filter *f, unsigned len, uint32_t *key)
{
	unsigned pc;
	bool seen = false;

	for (pc = 0; pc < len; pc++) {
		if (f[pc].code != skel[pc].code || f[pc].jt != skel[pc].jt ||
		    f[pc].jf != skel[pc].jf)
			return -1;
		if (site[pc] == 0) {
			if (f[pc].k != skel[pc].k)
				return -1;
		} else if (!seen) {
			*key = f[pc].k;
			seen = true;
		} else if (f[pc].k != *key)
			return -1;
	}
	return seen ? 0 : -1;
}

/*
 * One pass through a family's program: collecting what A holds at the
 * sites, or trying one constant, when a match counts the members listed
 * for it.
 */
static void emit_members(struct emit *, const struct xlate_family *,
    uint32_t slots);

static void
emit_pass(struct emit *e, const struct xlate_family *fam, const uint8_t *reach,
    uint32_t init, uint32_t slots)
{
	unsigned pc, len = fam->len;

	e->flen = len;
	e->used[0] = e->used[1] = false;
	if ((e->at = calloc(len + 2, sizeof(*e->at))) == NULL) {
		e->nomem = true;
		fail(e, "out of memory");
		return;
	}
	if (init & V_A)
		alu32_k(e, BPF_MOV, R_A, 0);
	if (init & V_X)
		alu32_k(e, BPF_MOV, R_X, 0);
	for (pc = 0; pc < len; pc++) {
		e->at[pc] = e->len;
		if (reach[pc])
			emit_insn(e, &fam->skel[pc], pc);
	}
	e->at[LBL_MATCH(len)] = e->len;
	if (e->used[0] && e->pass == PASS_COLLECT)
		fail(e, "a family's program accepts where no member matches");
	else if (e->used[0])
		emit_members(e, fam, slots);
	e->at[LBL_REJECT(len)] = e->len;
	resolve(e);
	free(e->at);
	e->at = NULL;
}

/* Add the packet to the counters of the members listed at OFF_VALUE. */
static void
emit_members(struct emit *e, const struct xlate_family *fam, uint32_t slots)
{
	size_t done[XLATE_MEMBERS_MAX], next[XLATE_PINS_MAX], n, m;
	unsigned k;

	ldx(e, BPF_DW, BPF_REG_1, BPF_REG_10, OFF_VALUE);
	for (k = 0; k < XLATE_MEMBERS_MAX; k++) {
		ldx(e, BPF_H, BPF_REG_2, BPF_REG_1, (int16_t)(2 * k));
		done[k] = skip(e, BPF_JMP | BPF_JGE | BPF_K, BPF_REG_2, 0,
		    (int32_t)slots);
		for (n = m = 0; m < fam->npins; m++) {
			size_t other = skip(e, BPF_JMP | BPF_JNE | BPF_K,
			    BPF_REG_2, 0, (int32_t)fam->pins[m].index);

			if (fam->pins[m].excluded)
				next[n++] = skip(e, BPF_JMP | BPF_JA, 0, 0, 0);
			else {
				ldx(e, BPF_W, BPF_REG_3, BPF_REG_10, OFF_FKEY);
				next[n++] = skip(e, BPF_JMP32 | BPF_JNE | BPF_K,
				    BPF_REG_3, 0, (int32_t)fam->pins[m].key);
			}
			land(e, other);
		}
		alu64_k(e, BPF_LSH, BPF_REG_2, 4);
		alu64_x(e, BPF_MOV, BPF_REG_3, R_COUNTERS);
		alu64_x(e, BPF_ADD, BPF_REG_3, BPF_REG_2);
		ldx(e, BPF_DW, BPF_REG_4, BPF_REG_3, 0);
		alu64_k(e, BPF_ADD, BPF_REG_4, 1);
		stx(e, BPF_DW, BPF_REG_3, 0, BPF_REG_4);
		ldx(e, BPF_DW, BPF_REG_4, BPF_REG_3, 8);
		ldx(e, BPF_DW, BPF_REG_5, BPF_REG_10, OFF_WIRELEN);
		alu64_x(e, BPF_ADD, BPF_REG_4, BPF_REG_5);
		stx(e, BPF_DW, BPF_REG_3, 8, BPF_REG_4);
		while (n > 0)
			land(e, next[--n]);
	}
	for (k = 0; k < XLATE_MEMBERS_MAX; k++)
		land(e, done[k]);
}

/*
 * The members whose constant is what A held at site J, unless an earlier
 * site held the same (they were tried there): looked up, and tried.
 */
static void
emit_candidate(struct emit *e, const struct xlate_family *fam,
    const struct scan *sc, unsigned j, uint32_t slots)
{
	size_t out[XLATE_SITES_MAX + 2], n = 0;
	unsigned i;

	ldx(e, BPF_DW, BPF_REG_1, BPF_REG_10, (int16_t)OFF_SITE(j));
	out[n++] = skip(e, BPF_JMP | BPF_JEQ | BPF_K, BPF_REG_1, 0, -1);
	for (i = 0; i < j; i++) {
		ldx(e, BPF_DW, BPF_REG_2, BPF_REG_10, (int16_t)OFF_SITE(i));
		out[n++] = skip(e, BPF_JMP | BPF_JEQ | BPF_X, BPF_REG_1,
		    BPF_REG_2, 0);
	}
	stx(e, BPF_DW, BPF_REG_10, OFF_PARAM, BPF_REG_1);
	stx(e, BPF_W, BPF_REG_10, OFF_FKEY, BPF_REG_1);
	put(e, BPF_LD | BPF_DW | BPF_IMM, BPF_REG_1, BPF_PSEUDO_MAP_FD, 0,
	    fam->members_fd);
	put(e, 0, 0, 0, 0, 0);
	alu64_x(e, BPF_MOV, BPF_REG_2, BPF_REG_10);
	alu64_k(e, BPF_ADD, BPF_REG_2, OFF_FKEY);
	call(e, BPF_FUNC_map_lookup_elem);
	out[n++] = skip(e, BPF_JMP | BPF_JEQ | BPF_K, BPF_REG_0, 0, 0);
	stx(e, BPF_DW, BPF_REG_10, OFF_VALUE, BPF_REG_0);
	e->pass = PASS_PARAM;
	emit_pass(e, fam, sc->reach, sc->init, slots);
	while (n > 0)
		land(e, out[--n]);
}

/*
 * A family's members counted at once: the program runs once as if no
 * member's constant matched anywhere (where, by xlate_family(), none
 * accepts), keeping what A held at each site it passed; each value is
 * then looked up among the members' constants, and only the members
 * listed for it run, the program tried with that constant. A member whose
 * constant A never held went the first way, and rejects.
 */
static void
emit_family(struct emit *e, const struct xlate_family *fam,
    const struct scan *sc, uint32_t slots)
{
	unsigned pc, nsites = 0;
	uint8_t *reach;

	for (pc = 0; pc < fam->len; pc++)
		if (fam->site[pc] > nsites)
			nsites = fam->site[pc];
	for (pc = 0; pc < nsites; pc++)
		put(e, BPF_ST | BPF_MEM | BPF_DW, BPF_REG_10, 0,
		    (int16_t)OFF_SITE(pc), -1);
	if ((reach = collect_reach(fam->skel, fam->len, fam->site)) == NULL) {
		e->nomem = true;
		return;
	}
	e->site = fam->site;
	e->pass = PASS_COLLECT;
	emit_pass(e, fam, reach, sc->init, slots);
	free(reach);
	for (pc = 0; pc < nsites && !e->failed; pc++)
		emit_candidate(e, fam, sc, pc, slots);
	e->site = NULL;
	e->pass = PASS_PLAIN;
}

/* Go on with program NEXT of the program array PROGS_FD, if it holds one. */
static void
emit_tail_call(struct emit *e, uint8_t ctx, int progs_fd, uint32_t next)
{
	alu64_x(e, BPF_MOV, BPF_REG_1, ctx);
	put(e, BPF_LD | BPF_DW | BPF_IMM, BPF_REG_2, BPF_PSEUDO_MAP_FD, 0,
	    progs_fd);
	put(e, 0, 0, 0, 0, 0);
	alu64_k(e, BPF_MOV, BPF_REG_3, (int32_t)next);
	call(e, BPF_FUNC_tail_call);
}

static int
build(const struct xlate_filter *filters, size_t n, int map_fd,
    uint32_t slots, const struct xlate_wire *wire,
    const struct xlate_family *fam, int next_fd, uint32_t next,
    struct xlate_prog *out, char *err, size_t errlen)
{
	static const struct xlate_wire ethernet = { 0, 4 };
	struct scan *sc, fsc = { 0 };
	struct emit e;
	size_t i;

	emit_init(&e, err, errlen);
	if (wire == NULL)
		wire = &ethernet;
	if (slots > XLATE_SLOTS_MAX)
		fail(&e, "%u counters: a map holds at most %d", slots,
		    XLATE_SLOTS_MAX);
	if (wire->hdr_len > XLATE_WIRE_MAX || wire->vlan_len > XLATE_WIRE_MAX)
		fail(&e, "wire length: header %u, VLAN tag %u bytes; each "
		    "at most %d", wire->hdr_len, wire->vlan_len,
		    XLATE_WIRE_MAX);
	if (fam != NULL && !e.failed && ((fsc.reach = malloc(fam->len ?
	    fam->len : 1)) == NULL || scan_filter(&e, fam->skel, fam->len,
	    &fsc) == -1))
		e.nomem = fsc.reach == NULL;
	if ((sc = calloc(n ? n : 1, sizeof(*sc))) == NULL)
		e.nomem = true;
	else if (!e.failed && scan_all(&e, filters, n, slots, sc) == 0) {
		e.prefix = prefix_size(sc, n);
		if (fam != NULL && e.prefix < prefix_size(&fsc, 1))
			e.prefix = prefix_size(&fsc, 1);
		alu64_x(&e, BPF_MOV, R_CTX, BPF_REG_1);
		emit_counters(&e, map_fd, wire);
		if (e.prefix > 0)
			emit_prefix(&e);
		if (fam != NULL && fam->npins > XLATE_PINS_MAX)
			fail(&e, "%zu pins: at most %d", fam->npins,
			    XLATE_PINS_MAX);
		else if (fam != NULL)
			emit_family(&e, fam, &fsc, slots);
		for (i = 0; i < n && !e.failed; i++)
			emit_filter(&e, filters[i].insns, filters[i].len,
			    &sc[i], filters[i].index);
		if (next_fd != -1)
			emit_tail_call(&e, R_CTX, next_fd, next);
		ret(&e, 0);
	}
	free_scans(sc, n);
	free(fsc.reach);
	return emit_finish(&e, out);
}

int
xlate_build(const struct xlate_filter *filters, size_t n, int map_fd,
    uint32_t slots, const struct xlate_wire *wire, struct xlate_prog *out,
    char *err, size_t errlen)
{
	return build(filters, n, map_fd, slots, wire, NULL, -1, 0, out, err,
	    errlen);
}

int
xlate_build_chain(const struct xlate_filter *filters, size_t n, int map_fd,
    uint32_t slots, const struct xlate_wire *wire,
    const struct xlate_family *fam, int next_fd, uint32_t next,
    struct xlate_prog *out, char *err, size_t errlen)
{
	return build(filters, n, map_fd, slots, wire, fam, next_fd, next, out,
	    err, errlen);
}

int
xlate_build_head(int progs_fd, struct xlate_prog *out, char *err,
    size_t errlen)
{
	struct emit e;

	emit_init(&e, err, errlen);
	emit_tail_call(&e, BPF_REG_1, progs_fd, 0);
	ret(&e, 0);
	return emit_finish(&e, out);
}

int
xlate_build_test(const struct sock_filter *insns, unsigned len,
    struct xlate_prog *out, char *err, size_t errlen)
{
	struct scan sc;
	struct emit e;

	emit_init(&e, err, errlen);
	memset(&sc, 0, sizeof(sc));
	if ((sc.reach = malloc(len ? len : 1)) == NULL)
		e.nomem = true;
	else if (scan_filter(&e, insns, len, &sc) == 0) {
		e.prefix = prefix_size(&sc, 1);
		alu64_x(&e, BPF_MOV, R_CTX, BPF_REG_1);
		if (e.prefix > 0)
			emit_prefix(&e);
		emit_filter(&e, insns, len, &sc, -1);
	}
	free(sc.reach);
	return emit_finish(&e, out);
}

int
xlate_check(const struct sock_filter *insns, unsigned len, char *err,
    size_t errlen)
{
	struct scan sc;
	struct emit e;
	int rc = -1;

	emit_init(&e, err, errlen);
	memset(&sc, 0, sizeof(sc));
	if ((sc.reach = malloc(len ? len : 1)) == NULL)
		fail(&e, "out of memory");
	else
		rc = scan_filter(&e, insns, len, &sc);
	free(sc.reach);
	return rc;
}

void
xlate_free(struct xlate_prog *p)
{
	free(p->insns);
	p->insns = NULL;
	p->len = 0;
}
