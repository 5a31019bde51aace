/*
** own_os.c — an app that brings its own OS table, built against an
** installed libveld.so (tests/install/run.sh): the functions
** veld_platform.h points apps to must be exported, or this does not link.
**
** 1. A counting table: veld_os_default()'s entries wrapped so every open,
**    write and fsync is counted in the table's ctx.  A store created and
**    reopened through it must have gone through it.
** 2. The fault-injecting table: the first fsync fails, so creating a store
**    fails, and the table's own counter saw that fsync.
**
** Usage: own_os DIR   (DIR must not exist yet)
*/
#include <veld.h>
#include <veld_platform.h>

#include <stdio.h>
#include <string.h>

#define PASS "correct horse"

typedef struct counts {
	const veld_os *base;
	long opens, writes, fsyncs;
} counts;

static int count_open(void *ctx, const char *path, int flags, int mode)
{
	counts *c = ctx;
	c->opens++;
	return c->base->xOpen(c->base->ctx, path, flags, mode);
}

static int64_t count_pwrite(void *ctx, int fd, const void *buf, size_t n, int64_t off)
{
	counts *c = ctx;
	c->writes++;
	return c->base->xPwrite(c->base->ctx, fd, buf, n, off);
}

static int count_fsync(void *ctx, int fd)
{
	counts *c = ctx;
	c->fsyncs++;
	return c->base->xFsync(c->base->ctx, fd);
}

static void fast_options(veld_store_options *o, const veld_os *os)
{
	veld_store_options_init(o);
	o->os = os;
	o->pwhash_opslimit = 1;    /* libsodium's minimum: this is a test */
	o->pwhash_memlimit = 8192;
	o->device_role = "assistant";
}

static int counting_table(const char *dir)
{
	counts c = {veld_os_default(), 0, 0, 0};
	veld_os mine = *veld_os_default();
	veld_store_options o;
	veld_store *s = NULL;
	char id[VELD_IDSIZE];
	long opens;
	int rc;
	mine.ctx = &c;
	mine.xOpen = count_open;
	mine.xPwrite = count_pwrite;
	mine.xFsync = count_fsync;
	fast_options(&o, &mine);
	rc = veld_store_create(&s, dir, PASS, strlen(PASS), &o);
	if (rc == VELD_OK)
		rc = veld_case_new(id, s, "{\"name\":\"An\",\"postcode\":\"1500\"}");
	if (rc != VELD_OK)
		fprintf(stderr, "own_os: create through the counting table: %d %s\n", rc, veld_errmsg(s));
	veld_store_close(s);
	s = NULL;
	if (rc != VELD_OK)
		return 1;
	if (c.opens < 2 || c.writes < 1 || c.fsyncs < 1) {
		fprintf(stderr, "own_os: the table was bypassed (%ld opens, %ld writes, %ld fsyncs)\n",
		        c.opens, c.writes, c.fsyncs);
		return 1;
	}
	opens = c.opens;
	rc = veld_store_open(&s, dir, PASS, strlen(PASS), &o);
	if (rc != VELD_OK || c.opens <= opens)
		fprintf(stderr, "own_os: open through the counting table: %d %s\n", rc, veld_errmsg(s));
	veld_store_close(s);
	printf("own_os: counting table: %ld opens, %ld writes, %ld fsyncs\n", c.opens, c.writes, c.fsyncs);
	return rc != VELD_OK || c.opens <= opens;
}

static int faulty_table(const char *dir)
{
	veld_os_fault_plan plan;
	veld_os_faulty *f = NULL;
	veld_store_options o;
	veld_store *s = NULL;
	int rc, bad = 0;
	if (veld_os_faulty_new(&f, veld_os_default()) != 0) {
		fprintf(stderr, "own_os: veld_os_faulty_new failed\n");
		return 1;
	}
	memset(&plan, 0, sizeof plan);
	plan.version = 1;
	plan.fail_fsync_at = 1;
	veld_os_faulty_set(f, &plan);
	fast_options(&o, veld_os_faulty_table(f));
	rc = veld_store_create(&s, dir, PASS, strlen(PASS), &o);
	if (rc == VELD_OK || veld_os_faulty_count(f, 's') < 1 || veld_os_faulty_crashed(f)) {
		fprintf(stderr, "own_os: a failing fsync gave %d (%s) after %ld fsyncs\n", rc, veld_errmsg(s),
		        veld_os_faulty_count(f, 's'));
		bad = 1;
	} else {
		printf("own_os: faulty table: create failed as planned: %s\n", veld_errmsg(s));
	}
	veld_store_close(s);
	veld_os_faulty_free(f);
	return bad;
}

int main(int argc, char **argv)
{
	char faulty_dir[4096];
	if (argc != 2) {
		fprintf(stderr, "usage: own_os DIR\n");
		return 2;
	}
	snprintf(faulty_dir, sizeof faulty_dir, "%s-faulty", argv[1]);
	if (counting_table(argv[1]) || faulty_table(faulty_dir))
		return 1;
	return 0;
}
