/*
** faults_io.c — an I/O error at every call: store create and open, a put,
** an import, a sync with a hub on a path and a report, each run with the
** N-th write, fsync, read, directory listing or removal failing with -EIO,
** N = 1.. (the sweep and what it checks after each run:
** tests/support/sweep.c).  The errors come from the fault-injecting OS
** table (platform/faulty.c), the one tests/unit/crash.c uses for power
** loss; here nothing loses power: one call fails, the ones after it work.
**
** What goes through the table is the store's own files (veld.key, veld.db
** and its WAL, the lock) and the listings and removals of sync's git layer;
** libgit2 reads and writes the repository itself.  A call whose fsync
** failed may still have committed (the write before it landed), so the
** model allows a failed call's records to be there or not.
**
** Cost: every N up to 20, then about 20 more with a stride, per kind of
** call and operation; VELD_TEST_LONG=1 runs every N.
*/
#include "testutil.h"

#include <string.h>

/* The table the store is opened with, and what fails. */
typedef struct io_fault {
	veld_os_faulty *f;
	int which;     /* 'w', 's', 'r', 'l' or 'd' (veld_os_faulty_count) */
	long start;    /* the count when armed */
} io_fault;

static void arm(void *payload, long n)
{
	io_fault *x = payload;
	veld_os_fault_plan plan;
	memset(&plan, 0, sizeof plan);
	plan.version = 2;
	x->start = veld_os_faulty_count(x->f, x->which);
	if (n) {
		long at = x->start + n;
		switch (x->which) {
		case 'w': plan.fail_write_at = at; break;
		case 's': plan.fail_fsync_at = at; break;
		case 'r': plan.fail_read_at = at; break;
		case 'l': plan.fail_list_at = at; break;
		default: plan.fail_remove_at = at; break;
		}
	}
	veld_os_faulty_set(x->f, &plan);
}

static long disarm(void *payload)
{
	io_fault *x = payload;
	veld_os_fault_plan plan;
	memset(&plan, 0, sizeof plan);
	plan.version = 2;
	veld_os_faulty_set(x->f, &plan);
	return veld_os_faulty_count(x->f, x->which) - x->start;
}

static void sweep(const char *op)
{
	static const struct {
		int which;
		const char *name;
	} kinds[] = {{'w', "write"}, {'s', "fsync"}, {'r', "read"}, {'l', "listing"}, {'d', "removal"}};
	veld_test_sweep w;
	io_fault x;
	size_t i;
	memset(&x, 0, sizeof x);
	assert_int_equal(veld_os_faulty_new(&x.f, veld_os_default()), 0);
	veld_test_sweep_up(&w, "faults-io");
	w.os = veld_os_faulty_table(x.f);
	w.arm = arm;
	w.disarm = disarm;
	w.payload = &x;
	w.may_land = 1;
	w.dense = 20;
	w.runs = 20;
	for (i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
		x.which = kinds[i].which;
		w.kind = kinds[i].name;
		veld_test_sweep_run(&w, op);
	}
	veld_test_sweep_down(&w);
	veld_os_faulty_free(x.f);
}

int main(void)
{
	return veld_test_sweep_main("faults_io", sweep);
}
