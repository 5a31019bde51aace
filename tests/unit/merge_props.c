/*
** tests/unit/merge_props.c — properties of the record merge, over thousands
** of random histories.
**
** One history: N replicas (3..6) of one record, each a device with its own
** hybrid logical clock and a wall clock that is off by up to an hour and
** sometimes jumps (back an hour, or forward).  Random steps: local writes
** (one to three paths under one stamp, as the store stamps a whole put;
** values include clears and multi-choice arrays), deletes, undeletes, and
** pairwise merges.  At every merge the algebra is checked on the states at
** hand:
**     merge(a,b) == merge(b,a)                       commutative
**     merge(merge(a,b),c) == merge(a,merge(b,c))     associative
**     merge(a,a) == a, merge(merge(a,b),b) == merge(a,b)   idempotent
**     parse(canonical(x)) == x                       (canonical bytes)
** and the merged state is checked against a ground truth kept by this test
** alone, independently of the implementation: a log of every write with
** the set of writes its writer had seen (causality tracked explicitly as
** sets, not through stamps).  For every path, the live versions must be
** exactly the writes no other known write has seen (the maximal ones), so
**   - no write is lost: each is live or superseded by a write whose writer
**     had seen it;
**   - concurrent writes to one path, neither seeing the other, are all live
**     (a conflict with every value), and the shown value is the one with
**     the highest stamp;
**   - the context holds, per device, the highest known stamp;
**   - a delete-against-edit conflict is reported exactly when the shown
**     "_deleted" is true and some live edit was seen by no live delete.
** At the end all replicas exchange everything and must hold byte-identical
** canonical states, equal as well to a fold of the pre-exchange states in
** another random order.
**
** Environment: VELD_PROP_ITER (histories, default 1000), VELD_PROP_SEED
** (first seed; default from the clock).  A failure prints the seed of the
** failing history: rerun with VELD_PROP_SEED=<seed> VELD_PROP_ITER=1.
*/
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_REPLICAS 6
#define MAX_WRITES   200
#define HOUR_MS      ((int64_t)3600 * 1000)
#define REC_ID       "0123456789abcdef0123456789abcdef"
#define CASE_ID      "fedcba9876543210fedcba9876543210"

static const char *const paths[] = {
        "naam", "plaats", "acties.a1.status", "acties.a2.status", "huisvesting.score", "_form_version",
};
#define N_PATHS (sizeof paths / sizeof paths[0])
#define P_DELETED N_PATHS /* index of "_deleted" */

static int rng_below(uint64_t *s, int n)
{
	return (int)veld_test_rng_below(s, (unsigned)n);
}

/* ---- the ground truth -------------------------------------------------------- */

typedef struct gt_write {
	int path;                     /* index into paths[], or P_DELETED */
	json_t *value;
	veld_stamp stamp;
	unsigned char seen[MAX_WRITES]; /* writes the writer had seen (not itself) */
} gt_write;

typedef struct replica {
	veld_record *rec;
	veld_stamp hlc;
	int64_t skew;
	char dev[VELD_DEVICE_ID_LEN + 1];
	unsigned char known[MAX_WRITES];
} replica;

typedef struct history {
	uint64_t seed, rng;
	int n_rep, step;
	int64_t now;
	replica rep[MAX_REPLICAS];
	gt_write w[MAX_WRITES];
	int n_w;
} history;

typedef struct stats {
	long histories, merges, algebra, writes, conflicts_final, delete_conflicts, cleared, checks;
} stats;

#define CHECK(h, cond)                                                                              \
	do {                                                                                            \
		if (!(cond)) {                                                                              \
			print_error("property failed: %s\n  at %s:%d, history seed %llu, step %d\n"            \
			            "  rerun: VELD_PROP_SEED=%llu VELD_PROP_ITER=1\n",                          \
			            #cond, __FILE__, __LINE__, (unsigned long long)(h)->seed, (h)->step,        \
			            (unsigned long long)(h)->seed);                                             \
			fail();                                                                                 \
		}                                                                                           \
	} while (0)

static const char *path_name(int p)
{
	return p == (int)P_DELETED ? "_deleted" : paths[p];
}

static json_t *random_value(history *h)
{
	switch (rng_below(&h->rng, 10)) {
	case 0:
		return json_null(); /* a clear */
	case 1:
		return json_integer(rng_below(&h->rng, 4));
	case 2:
		return json_real(rng_below(&h->rng, 2) ? 0.1 : 2.5);
	case 3:
		return json_pack("[ss]", "schulden", "huisvesting");
	case 4:
		return json_array();
	case 5:
		return json_string("ç\"é\\\n");
	default: {
		static const char *const s[] = {"huisbezoek", "zitdag", "werkplaats", "lopend", "bereikt"};
		return json_string(s[rng_below(&h->rng, 5)]);
	}
	}
}

/* Copy through the canonical bytes: checks that parse accepts every state
** the model builds and gives back the same bytes. */
static veld_record *copy_rec(history *h, const veld_record *r)
{
	char *c = veld_record__canonical(r), *c2;
	veld_record *out = NULL;
	veld_err err = {0, ""};
	CHECK(h, c != NULL);
	if (veld_record__parse(&out, c, strlen(c), &err))
		print_error("parse: %s\n", err.msg);
	CHECK(h, out != NULL);
	c2 = veld_record__canonical(out);
	CHECK(h, c2 && !strcmp(c, c2));
	free(c);
	free(c2);
	return out;
}

static int same_bytes(const veld_record *a, const veld_record *b)
{
	char *ca = veld_record__canonical(a), *cb = veld_record__canonical(b);
	int eq = ca && cb && !strcmp(ca, cb);
	free(ca);
	free(cb);
	return eq;
}

/* A fresh record is the identity of merge: merge(new, a) is a copy of a. */
static veld_record *merged(history *h, const veld_record *a, const veld_record *b)
{
	veld_record *m = NULL;
	CHECK(h, veld_record__new(&m, REC_ID, CASE_ID, "sociale_balans") == 0);
	CHECK(h, veld_record__merge(m, a) == 0);
	if (b)
		CHECK(h, veld_record__merge(m, b) == 0);
	return m;
}

/* ---- steps ---------------------------------------------------------------------- */

static void tick(history *h, replica *r)
{
	h->now += rng_below(&h->rng, 4); /* walls often tie across devices */
	switch (rng_below(&h->rng, 50)) {
	case 0:
		r->skew -= HOUR_MS; /* the tablet's clock jumps back an hour */
		break;
	case 1:
		r->skew += rng_below(&h->rng, 1000 * 600);
		break;
	default:
		break;
	}
}

/* One put: 1..3 distinct paths, or a delete / undelete, under one stamp. */
static void local_write(history *h, stats *st, int ri)
{
	replica *r = &h->rep[ri];
	veld_stamp s;
	int chosen[N_PATHS + 1], n = 0, kind = rng_below(&h->rng, 20), i;
	tick(h, r);
	veld_hlc__next(&s, &r->hlc, h->now + r->skew, r->dev);
	if (kind < 3) {
		chosen[n++] = P_DELETED;
	} else {
		int want = 1 + rng_below(&h->rng, 3);
		while (n < want) {
			int p = rng_below(&h->rng, N_PATHS), dup = 0;
			for (i = 0; i < n; i++)
				dup |= chosen[i] == p;
			if (!dup)
				chosen[n++] = p;
		}
	}
	if (h->n_w + n > MAX_WRITES)
		return;
	for (i = 0; i < n; i++) {
		gt_write *w = &h->w[h->n_w];
		memset(w, 0, sizeof *w);
		w->path = chosen[i];
		w->stamp = s;
		memcpy(w->seen, r->known, sizeof w->seen);
		if (w->path == (int)P_DELETED) {
			w->value = json_boolean(kind < 2); /* mostly deletes, some undeletes */
			if (kind < 2)
				CHECK(h, veld_record__delete(r->rec, &s) == 0);
			else
				CHECK(h, veld_record__set(r->rec, "_deleted", w->value, &s) == 0);
		} else {
			w->value = random_value(h);
			CHECK(h, w->value != NULL);
			CHECK(h, veld_record__set(r->rec, paths[w->path], w->value, &s) == 0);
		}
		h->n_w++;
		st->writes++;
	}
	/* The writes of one put are known together, after all were made. */
	for (i = h->n_w - n; i < h->n_w; i++)
		r->known[i] = 1;
}

/* Writes in `known` on path p that no other write in `known` has seen. */
static int is_maximal(const history *h, const unsigned char *known, int wi)
{
	int j;
	for (j = 0; j < h->n_w; j++) {
		if (j != wi && known[j] && h->w[j].path == h->w[wi].path && h->w[j].seen[wi])
			return 0;
	}
	return 1;
}

static int value_is(const json_t *a, const json_t *b)
{
	return a && b && json_equal((json_t *)a, (json_t *)b);
}

/* The state of `rec` is what the ground truth `known` says it must be. */
static void check_state(history *h, stats *st, const veld_record *rec, const unsigned char *known)
{
	char *canon = veld_record__canonical(rec);
	json_error_t e;
	json_t *state, *fields, *ctx, *view, *conflicts, *edits;
	int p, wi, d, live_del[MAX_WRITES], n_del = 0, has_true = 0, has_false = 0;
	int shown_deleted = 0;
	const char *exp_edits[N_PATHS];
	int n_edits = 0;
	CHECK(h, canon != NULL);
	state = json_loads(canon, 0, &e);
	CHECK(h, state != NULL);
	fields = json_object_get(state, "fields");
	ctx = json_object_get(state, "ctx");
	view = veld_record__view(rec);
	CHECK(h, view != NULL);
	conflicts = json_object_get(view, "conflicts");
	st->checks++;

	for (p = 0; p <= (int)P_DELETED; p++) {
		json_t *list = json_object_get(fields, path_name(p));
		int live[MAX_WRITES], n_live = 0, i, best = -1;
		size_t n_impl = 0;
		const json_t *shown;
		for (wi = 0; wi < h->n_w; wi++) {
			if (!known[wi] || h->w[wi].path != p)
				continue;
			if (is_maximal(h, known, wi)) {
				live[n_live++] = wi;
				if (best < 0 || veld_stamp__cmp(&h->w[wi].stamp, &h->w[best].stamp) > 0)
					best = wi;
			}
		}
		/* Live versions: exactly the maximal writes, ascending by stamp. */
		CHECK(h, json_array_size(list) == (size_t)n_live);
		for (i = 0; i < n_live; i++) {
			json_t *v = json_array_get(list, (size_t)i);
			veld_stamp s;
			int found = 0, k;
			CHECK(h, veld_stamp__from_json(&s, json_object_get(v, "s")) == 0);
			for (k = 0; k < n_live; k++) {
				if (!veld_stamp__cmp(&s, &h->w[live[k]].stamp)) {
					CHECK(h, value_is(json_object_get(v, "v"), h->w[live[k]].value));
					found = 1;
				}
			}
			CHECK(h, found);
			if (i > 0) {
				veld_stamp prev;
				CHECK(h, veld_stamp__from_json(&prev, json_object_get(json_array_get(list, (size_t)i - 1), "s")) == 0);
				CHECK(h, veld_stamp__cmp(&prev, &s) < 0);
			}
		}
		/* No write lost: live, or seen by a later write of the same path. */
		for (wi = 0; wi < h->n_w; wi++) {
			int ok = 0, j;
			if (!known[wi] || h->w[wi].path != p)
				continue;
			for (j = 0; j < n_live; j++)
				ok |= live[j] == wi;
			for (j = 0; j < h->n_w && !ok; j++)
				ok = j != wi && known[j] && h->w[j].path == p && h->w[j].seen[wi];
			CHECK(h, ok);
		}
		/* The shown value is the live version with the highest stamp. */
		shown = veld_record__value(rec, path_name(p), &n_impl);
		CHECK(h, n_impl == (size_t)n_live);
		if (best >= 0) {
			CHECK(h, value_is(shown, h->w[best].value));
			if (json_is_null(h->w[best].value) && p != (int)P_DELETED)
				st->cleared++;
		} else {
			CHECK(h, shown == NULL);
		}
		/* The view lists a conflict with every value, highest stamp first. */
		if (p != (int)P_DELETED && path_name(p)[0] != '_') {
			json_t *vals = json_object_get(conflicts, path_name(p));
			if (n_live > 1) {
				veld_stamp prev;
				CHECK(h, json_array_size(vals) == (size_t)n_live);
				for (i = 0; i < n_live; i++) {
					/* value i of the view is the i-th highest stamp */
					int k, rank = 0;
					for (k = 0; k < n_live; k++)
						rank += veld_stamp__cmp(&h->w[live[k]].stamp, &h->w[live[i]].stamp) > 0;
					CHECK(h, value_is(json_array_get(vals, (size_t)rank), h->w[live[i]].value));
				}
				(void)prev;
			} else {
				CHECK(h, vals == NULL);
			}
		}
		if (p == (int)P_DELETED) {
			for (i = 0; i < n_live; i++) {
				live_del[n_del++] = live[i];
				if (json_is_true(h->w[live[i]].value))
					has_true = 1;
				else
					has_false = 1;
			}
			shown_deleted = best >= 0 && json_is_true(h->w[best].value);
		}
	}
	/* Paths that are nowhere in the ground truth are not in the state. */
	CHECK(h, json_object_size(fields) <= N_PATHS + 1);
	{
		const char *key;
		json_t *v;
		json_object_foreach(fields, key, v)
		{
			int ok = 0;
			for (p = 0; p <= (int)P_DELETED; p++)
				ok |= !strcmp(key, path_name(p));
			CHECK(h, ok);
		}
	}

	/* Context: per device, the highest stamp among the known writes. */
	{
		size_t n_dev = 0;
		for (d = 0; d < h->n_rep; d++) {
			int top = -1;
			json_t *entry = json_object_get(ctx, h->rep[d].dev);
			for (wi = 0; wi < h->n_w; wi++) {
				if (known[wi] && !strcmp(h->w[wi].stamp.device, h->rep[d].dev) &&
				    (top < 0 || veld_stamp__cmp(&h->w[wi].stamp, &h->w[top].stamp) > 0))
					top = wi;
			}
			if (top < 0) {
				CHECK(h, entry == NULL);
				continue;
			}
			n_dev++;
			CHECK(h, entry != NULL);
			CHECK(h, json_integer_value(json_array_get(entry, 0)) == h->w[top].stamp.wall);
			CHECK(h, json_integer_value(json_array_get(entry, 1)) == h->w[top].stamp.counter);
		}
		CHECK(h, json_object_size(ctx) == n_dev);
	}

	/* Delete against edit: shown deleted, and a live edit no live delete saw. */
	CHECK(h, veld_record__is_deleted(rec) == shown_deleted);
	CHECK(h, json_is_true(json_object_get(view, "deleted")) == shown_deleted);
	if (shown_deleted) {
		for (p = 0; p < (int)P_DELETED; p++) {
			int unseen = 0;
			for (wi = 0; wi < h->n_w && !unseen; wi++) {
				int k, seen = 0;
				if (!known[wi] || h->w[wi].path != p || !is_maximal(h, known, wi))
					continue;
				for (k = 0; k < n_del; k++)
					seen |= json_is_true(h->w[live_del[k]].value) && h->w[live_del[k]].seen[wi];
				unseen = !seen;
			}
			if (unseen)
				exp_edits[n_edits++] = paths[p];
		}
	}
	edits = json_object_get(view, "concurrent_edits");
	CHECK(h, json_array_size(edits) == (size_t)n_edits);
	{
		/* the view sorts the paths; compare as sets */
		int i, k;
		for (i = 0; i < n_edits; i++) {
			int found = 0;
			for (k = 0; k < n_edits; k++)
				found |= !strcmp(json_string_value(json_array_get(edits, (size_t)k)), exp_edits[i]);
			CHECK(h, found);
		}
	}
	{
		json_t *dc = json_object_get(conflicts, "_deleted");
		int want = (has_true && has_false) || n_edits > 0;
		CHECK(h, (dc != NULL) == want);
		if (dc) {
			CHECK(h, json_array_size(dc) == 2);
			CHECK(h, json_is_true(json_array_get(dc, 0)) == shown_deleted);
		}
		if (n_edits > 0)
			st->delete_conflicts++;
	}
	json_decref(view);
	json_decref(state);
	free(canon);
}

/* Canonical bytes (the test owns the string). */
static char *canon(history *h, const veld_record *r)
{
	char *c = veld_record__canonical(r);
	CHECK(h, c != NULL);
	return c;
}

/* Canonical bytes of `r` equal `want`; frees nothing of the caller's. */
static int bytes_are(history *h, const veld_record *r, const char *want)
{
	char *c = canon(h, r);
	int eq = !strcmp(c, want);
	free(c);
	return eq;
}

/* Replica i merges replica j's state, checking the algebra on the way
** (if `algebra`) and the result against the ground truth. */
static void merge_step(history *h, stats *st, int i, int j, int algebra)
{
	replica *ri = &h->rep[i], *rj = &h->rep[j];
	int c = rng_below(&h->rng, h->n_rep), k;
	veld_record *ab, *ba, *aa, *abb, *ab_c, *bc, *a_bc, *back = NULL;
	char *ca = canon(h, ri->rec), *cab, *cab_c, *cm;
	veld_err err = {0, ""};
	veld_stamp top;
	ab = merged(h, ri->rec, rj->rec);
	cab = canon(h, ab);
	if (!algebra)
		goto apply;
	ba = merged(h, rj->rec, ri->rec);
	CHECK(h, bytes_are(h, ba, cab));                 /* commutative */
	aa = merged(h, ri->rec, ri->rec);
	CHECK(h, bytes_are(h, aa, ca));                  /* idempotent */
	abb = merged(h, ab, rj->rec);
	CHECK(h, bytes_are(h, abb, cab));
	ab_c = merged(h, ab, h->rep[c].rec);
	bc = merged(h, rj->rec, h->rep[c].rec);
	a_bc = merged(h, ri->rec, bc);
	cab_c = canon(h, ab_c);
	CHECK(h, bytes_are(h, a_bc, cab_c));             /* associative */
	veld_record__free(ba);
	veld_record__free(aa);
	veld_record__free(abb);
	veld_record__free(ab_c);
	veld_record__free(bc);
	veld_record__free(a_bc);
	free(cab_c);
	st->algebra++;
apply:
	veld_record__free(ab);

	/* The merge in place gives the same state, and its bytes parse back. */
	CHECK(h, veld_record__merge(ri->rec, rj->rec) == 0);
	cm = canon(h, ri->rec);
	CHECK(h, !strcmp(cm, cab));
	if (veld_record__parse(&back, cm, strlen(cm), &err))
		print_error("parse: %s\n", err.msg);
	CHECK(h, back != NULL);
	CHECK(h, bytes_are(h, back, cm));
	veld_record__free(back);
	free(ca);
	free(cab);
	free(cm);

	for (k = 0; k < h->n_w; k++)
		ri->known[k] |= rj->known[k];
	if (veld_record__max_stamp(ri->rec, &top) == 0)
		veld_hlc__observe(&ri->hlc, &top, h->now + ri->skew);
	st->merges++;
	check_state(h, st, ri->rec, ri->known);
}

static void run_history(uint64_t seed, stats *st)
{
	history *h = calloc(1, sizeof *h);
	veld_record *fold = NULL, *pre[MAX_REPLICAS];
	unsigned char all[MAX_WRITES];
	int i, j, n_steps, p_write, order[MAX_REPLICAS];
	assert_non_null(h);
	h->seed = h->rng = seed;
	h->n_rep = 3 + rng_below(&h->rng, MAX_REPLICAS - 2);
	h->now = (int64_t)1700000000000 + rng_below(&h->rng, 1000000);
	for (i = 0; i < h->n_rep; i++) {
		replica *r = &h->rep[i];
		for (j = 0; j < VELD_DEVICE_ID_LEN; j++)
			r->dev[j] = "0123456789abcdef"[rng_below(&h->rng, 16)];
		r->skew = (int64_t)rng_below(&h->rng, (int)(2 * HOUR_MS)) - HOUR_MS;
		assert_int_equal(veld_record__new(&r->rec, REC_ID, CASE_ID, "sociale_balans"), 0);
	}
	n_steps = 8 + rng_below(&h->rng, 25);
	/* Some histories sync often (long chains of superseded versions),
	** some rarely (many concurrent versions). */
	p_write = 30 + rng_below(&h->rng, 51);
	for (h->step = 0; h->step < n_steps; h->step++) {
		if (rng_below(&h->rng, 100) < p_write) {
			local_write(h, st, rng_below(&h->rng, h->n_rep));
		} else {
			i = rng_below(&h->rng, h->n_rep);
			j = (i + 1 + rng_below(&h->rng, h->n_rep - 1)) % h->n_rep;
			merge_step(h, st, i, j, 1);
		}
	}

	/* Another order: fold the current states in a random permutation. */
	for (i = 0; i < h->n_rep; i++) {
		order[i] = i;
		pre[i] = merged(h, h->rep[i].rec, NULL);
	}
	for (i = h->n_rep - 1; i > 0; i--) {
		int k = rng_below(&h->rng, i + 1), t = order[i];
		order[i] = order[k];
		order[k] = t;
	}
	fold = copy_rec(h, pre[order[0]]);
	CHECK(h, same_bytes(fold, h->rep[order[0]].rec));
	for (i = 1; i < h->n_rep; i++)
		CHECK(h, veld_record__merge(fold, pre[order[i]]) == 0);

	/* Everyone gets everything: a star through a random hub, then back. */
	j = rng_below(&h->rng, h->n_rep);
	for (i = 0; i < h->n_rep; i++) {
		if (i != j)
			CHECK(h, veld_record__merge(h->rep[j].rec, h->rep[i].rec) == 0);
	}
	for (i = 0; i < h->n_rep; i++) {
		if (i != j)
			CHECK(h, veld_record__merge(h->rep[i].rec, h->rep[j].rec) == 0);
		memset(h->rep[i].known, 1, (size_t)h->n_w);
	}
	memset(all, 0, sizeof all);
	memset(all, 1, (size_t)h->n_w);
	for (i = 0; i < h->n_rep; i++) {
		CHECK(h, same_bytes(h->rep[i].rec, h->rep[0].rec));
		CHECK(h, same_bytes(h->rep[i].rec, fold));
	}
	check_state(h, st, h->rep[0].rec, all);
	{
		json_t *view = veld_record__view(h->rep[0].rec);
		CHECK(h, view != NULL);
		if (json_object_size(json_object_get(view, "conflicts")) > 0)
			st->conflicts_final++;
		json_decref(view);
	}

	for (i = 0; i < h->n_rep; i++) {
		veld_record__free(h->rep[i].rec);
		veld_record__free(pre[i]);
	}
	veld_record__free(fold);
	for (i = 0; i < h->n_w; i++)
		json_decref(h->w[i].value);
	free(h);
	st->histories++;
}

static void test_merge_props__random_histories(void **state)
{
	const char *e_iter = getenv("VELD_PROP_ITER"), *e_seed = getenv("VELD_PROP_SEED");
	long iters = e_iter && *e_iter ? strtol(e_iter, NULL, 10) : 1000;
	uint64_t base = e_seed && *e_seed ? strtoull(e_seed, NULL, 10) : (uint64_t)time(NULL);
	stats st;
	long it;
	(void)state;
	memset(&st, 0, sizeof st);
	print_message("merge properties: %ld histories, first seed %llu\n", iters, (unsigned long long)base);
	for (it = 0; it < iters; it++)
		run_history(base + (uint64_t)it, &st);
	print_message("merge properties: %ld histories, %ld writes, %ld merges (%ld with the algebra "
	              "checked), %ld state checks; "
	              "%ld end states with conflicts, %ld delete-vs-edit conflicts seen, %ld cleared shown\n",
	              st.histories, st.writes, st.merges, st.algebra, st.checks, st.conflicts_final, st.delete_conflicts,
	              st.cleared);
	/* The histories must have exercised what they claim to. */
	if (iters >= 100) {
		assert_true(st.conflicts_final > iters / 10);
		assert_true(st.delete_conflicts > 0);
		assert_true(st.cleared > 0);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_merge_props__random_histories),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
