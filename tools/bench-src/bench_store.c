/*
** bench_store.c — what the page encryption costs: the same year of a social
** service's contact registrations on plain SQLite, on veld's encrypted
** store database (both page ciphers) and on SQLCipher.  Not a test: it
** measures and prints; docs/benchmarks.md says how to read the result.
**
** One workload, identical SQL and identical pragmas for every engine
** (journal_mode=WAL, synchronous=FULL unless -s says otherwise,
** temp_store=MEMORY, mmap_size=0, cache_size=-2000, 4096-byte pages):
**   insert  N contact rows (id, case_id, date, place, duration, problems,
**           notes of about 200 bytes) with an index on (case_id, date),
**           in transactions of 1000 rows
**   range   read slices of 10 consecutive cases through the index
**   update  every 7th row (new notes, longer duration), 1000 per transaction
**   scan    a full scan with an aggregate per place
** The data comes from a fixed-seed generator, so every engine stores the
** same rows; each run prints a checksum of what it read back, and the
** driver refuses to compare engines whose checksums differ.
**
** Every measured run is a fresh child process on a fresh database (the
** driver re-executes itself with --one ENGINE), so no engine inherits
** another's page cache or heap.  Runs alternate the engines' order and are
** repeated; the table shows medians.  SQLCipher is a separate build of this
** same file (VELD_BENCH_SQLCIPHER) linked only against libsqlcipher: it
** exports the same symbols as libsqlite3 and the two cannot share one
** process.  The veld engines open the database exactly as the store does,
** through veld_vfs__create + veld_vfs__open_db (core.h) with a random page
** key, so the figures are those of the real VFS and its pragmas.
*/
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifdef VELD_BENCH_SQLCIPHER
#include <sqlite3.h> /* SQLCipher's, from pkg-config sqlcipher */
#else
#include <sodium.h>
#include "core.h"
#endif

#define N_PHASES 4
#define BATCH 1000
#define ROWS_PER_CASE 50
#define SLICE 10
#define MAX_RUNS 25

enum { ENG_SQLITE, ENG_VELD_AES, ENG_VELD_XCHACHA, ENG_SQLCIPHER, N_ENGINES };
static const char *const engine_names[N_ENGINES] = {
	"sqlite", "veld-aes256gcm", "veld-xchacha20", "sqlcipher",
};

typedef struct bench_opts {
	long rows;
	int runs;
	const char *sync;      /* FULL, NORMAL or OFF, the same for every engine */
	const char *workdir;
	const char *self;      /* argv[0], re-executed for each run */
	const char *sqlcipher; /* helper executable, or NULL */
	int engines[N_ENGINES];
	int n_engines;
} bench_opts;

typedef struct run_out {
	double t[N_PHASES];
	double total;
	unsigned long long check;
	long long bytes;
} run_out;

static void die(const char *fmt, ...)
#if defined(__GNUC__)
	__attribute__((format(printf, 1, 2), noreturn))
#endif
	;
static void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("veld_bench: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(1);
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- the data ------------------------------------------------------------ */

/* splitmix64 with a fixed seed: every engine stores the same rows. */
static uint64_t rnd(uint64_t *st)
{
	uint64_t z = (*st += 0x9E3779B97F4A7C15ull);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

static const char *const places[] = {"home", "office", "phone", "school", "workplace", "video"};
#define N_PLACES (sizeof places / sizeof places[0])
static const char *const problems[] = {
	"housing", "debt", "income", "health", "parenting", "work", "addiction",
	"loneliness", "administration", "legal", "education", "violence",
};
#define N_PROBLEMS (sizeof problems / sizeof problems[0])
static const char *const words[] = {
	"client", "visit", "talked", "about", "the", "rent", "arrears", "letter", "from",
	"housing", "corporation", "next", "step", "budget", "plan", "agreed", "with",
	"daughter", "school", "called", "back", "later", "week", "meeting", "debt",
	"counsellor", "forms", "signed", "benefit", "application", "pending", "landlord",
};
#define N_WORDS (sizeof words / sizeof words[0])

static void gen_notes(char *buf, size_t cap, size_t target, uint64_t *st)
{
	size_t len = 0;
	buf[0] = '\0';
	while (len < target) {
		const char *w = words[rnd(st) % N_WORDS];
		int n = snprintf(buf + len, cap - len, "%s%s", len ? " " : "", w);
		if (n < 0 || (size_t)n >= cap - len)
			break;
		len += (size_t)n;
	}
}

static void gen_problems(char *buf, size_t cap, uint64_t *st)
{
	int k = 1 + (int)(rnd(st) % 3), i;
	size_t len = 0;
	buf[0] = '\0';
	for (i = 0; i < k; i++) {
		int n = snprintf(buf + len, cap - len, "%s%s", i ? "," : "", problems[rnd(st) % N_PROBLEMS]);
		if (n < 0 || (size_t)n >= cap - len)
			break;
		len += (size_t)n;
	}
}

/* A date in 2024 for row i of n: rows arrive roughly in date order. */
static void gen_date(char *buf, size_t cap, long i, long n, uint64_t *st)
{
	static const int mdays[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	int day = (int)((double)i / (double)n * 366.0) + (int)(rnd(st) % 5);
	int m = 0;
	if (day > 365)
		day = 365;
	while (m < 11 && day >= mdays[m])
		day -= mdays[m++];
	snprintf(buf, cap, "2024-%02d-%02d", (m + 1) % 100, (day + 1) % 100);
}

/* ---- one engine, one run ------------------------------------------------- */

static void exec_or_die(sqlite3 *db, const char *sql)
{
	char *msg = NULL;
	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
		die("%s: %s", sql, msg ? msg : sqlite3_errmsg(db));
}

static sqlite3_stmt *prepare_or_die(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		die("%s: %s", sql, sqlite3_errmsg(db));
	return st;
}

static void step_done(sqlite3 *db, sqlite3_stmt *st)
{
	if (sqlite3_step(st) != SQLITE_DONE)
		die("step: %s", sqlite3_errmsg(db));
	sqlite3_reset(st);
}

/* The pragmas every engine gets, after its own open. */
static void common_pragmas(sqlite3 *db, const char *sync)
{
	char sql[128];
	sqlite3_stmt *st = prepare_or_die(db, "PRAGMA journal_mode=WAL");
	if (sqlite3_step(st) != SQLITE_ROW || strcmp((const char *)sqlite3_column_text(st, 0), "wal"))
		die("journal_mode=WAL refused");
	sqlite3_finalize(st);
	snprintf(sql, sizeof sql, "PRAGMA synchronous=%s", sync);
	exec_or_die(db, sql);
	exec_or_die(db, "PRAGMA temp_store=MEMORY");
	exec_or_die(db, "PRAGMA mmap_size=0");
	exec_or_die(db, "PRAGMA cache_size=-2000");
}

static void run_workload(run_out *out, sqlite3 *db, long rows)
{
	long n_cases = rows / ROWS_PER_CASE > 0 ? rows / ROWS_PER_CASE : 1, i;
	uint64_t st = 20240101;
	struct gen_row {
		char date[16], problems[128], notes[320];
		const char *place;
		long case_id, duration;
	} *rowv;
	sqlite3_stmt *ins, *sel, *upd, *agg;
	double t0;
	unsigned long long check = 1469598103934665603ull;

	exec_or_die(db,
	            "CREATE TABLE contact(id INTEGER PRIMARY KEY, case_id INTEGER NOT NULL,"
	            " date TEXT NOT NULL, place TEXT NOT NULL, duration INTEGER NOT NULL,"
	            " problems TEXT NOT NULL, notes TEXT NOT NULL);"
	            "CREATE INDEX contact_case_date ON contact(case_id, date);");

	/* insert: rows are generated a batch at a time outside the timer */
	out->t[0] = 0;
	rowv = calloc(BATCH, sizeof *rowv);
	if (!rowv)
		die("out of memory");
	ins = prepare_or_die(db, "INSERT INTO contact VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)");
	for (i = 1; i <= rows; i += BATCH) {
		long k, nb = rows - i + 1 < BATCH ? rows - i + 1 : BATCH;
		for (k = 0; k < nb; k++) {
			gen_date(rowv[k].date, sizeof rowv[k].date, i + k, rows, &st);
			gen_problems(rowv[k].problems, sizeof rowv[k].problems, &st);
			gen_notes(rowv[k].notes, sizeof rowv[k].notes, 180 + (size_t)(rnd(&st) % 40), &st);
			rowv[k].case_id = (long)(rnd(&st) % (uint64_t)n_cases);
			rowv[k].place = places[rnd(&st) % N_PLACES];
			rowv[k].duration = 5 + (long)(rnd(&st) % 116);
		}
		t0 = now_s();
		exec_or_die(db, "BEGIN");
		for (k = 0; k < nb; k++) {
			sqlite3_bind_int64(ins, 1, i + k);
			sqlite3_bind_int64(ins, 2, rowv[k].case_id);
			sqlite3_bind_text(ins, 3, rowv[k].date, -1, SQLITE_STATIC);
			sqlite3_bind_text(ins, 4, rowv[k].place, -1, SQLITE_STATIC);
			sqlite3_bind_int64(ins, 5, rowv[k].duration);
			sqlite3_bind_text(ins, 6, rowv[k].problems, -1, SQLITE_STATIC);
			sqlite3_bind_text(ins, 7, rowv[k].notes, -1, SQLITE_STATIC);
			step_done(db, ins);
		}
		exec_or_die(db, "COMMIT");
		out->t[0] += now_s() - t0;
	}
	sqlite3_finalize(ins);

	/* range: slices of SLICE consecutive cases, through the index */
	t0 = now_s();
	sel = prepare_or_die(db,
	                     "SELECT id, date, place, duration, length(problems), length(notes)"
	                     " FROM contact WHERE case_id BETWEEN ?1 AND ?1 + ?2 - 1"
	                     " ORDER BY case_id, date");
	for (i = 0; i < n_cases / SLICE && i < 400; i++) {
		long first = (long)((uint64_t)(i * 7919) % (uint64_t)n_cases);
		sqlite3_bind_int64(sel, 1, first);
		sqlite3_bind_int64(sel, 2, SLICE);
		while (sqlite3_step(sel) == SQLITE_ROW) {
			const unsigned char *d = sqlite3_column_text(sel, 1);
			check = (check ^ (unsigned long long)sqlite3_column_int64(sel, 0)) * 1099511628211ull;
			check = (check ^ (unsigned long long)sqlite3_column_int64(sel, 3)) * 1099511628211ull;
			check = (check ^ (unsigned long long)sqlite3_column_int64(sel, 5)) * 1099511628211ull;
			check = (check ^ (d ? d[9] : 0)) * 1099511628211ull;
		}
		sqlite3_reset(sel);
	}
	sqlite3_finalize(sel);
	out->t[1] = now_s() - t0;

	/* update every 7th row; new notes generated outside the timer */
	out->t[2] = 0;
	upd = prepare_or_die(db, "UPDATE contact SET duration = duration + 5, notes = ?2 WHERE id = ?1");
	for (i = 7; i <= rows; i += 7L * BATCH) {
		long k, nb = 0;
		for (k = 0; k < BATCH && i + 7 * k <= rows; k++, nb++)
			gen_notes(rowv[k].notes, sizeof rowv[k].notes, 190 + (size_t)(rnd(&st) % 30), &st);
		t0 = now_s();
		exec_or_die(db, "BEGIN");
		for (k = 0; k < nb; k++) {
			sqlite3_bind_int64(upd, 1, i + 7 * k);
			sqlite3_bind_text(upd, 2, rowv[k].notes, -1, SQLITE_STATIC);
			step_done(db, upd);
		}
		exec_or_die(db, "COMMIT");
		out->t[2] += now_s() - t0;
	}
	sqlite3_finalize(upd);
	free(rowv);

	/* scan with an aggregate */
	t0 = now_s();
	agg = prepare_or_die(db,
	                     "SELECT place, count(*), sum(duration), sum(length(notes)), max(date)"
	                     " FROM contact GROUP BY place ORDER BY place");
	while (sqlite3_step(agg) == SQLITE_ROW) {
		check = (check ^ (unsigned long long)sqlite3_column_int64(agg, 1)) * 1099511628211ull;
		check = (check ^ (unsigned long long)sqlite3_column_int64(agg, 2)) * 1099511628211ull;
		check = (check ^ (unsigned long long)sqlite3_column_int64(agg, 3)) * 1099511628211ull;
	}
	sqlite3_finalize(agg);
	out->t[3] = now_s() - t0;

	out->total = out->t[0] + out->t[1] + out->t[2] + out->t[3];
	out->check = check;
}

static long long file_bytes(const char *path)
{
	struct stat sb;
	return stat(path, &sb) == 0 ? (long long)sb.st_size : 0;
}

/* Run one engine on a new database in `dir`; print one result line. */
static int run_one(int engine, const char *dir, long rows, const char *sync)
{
	char path[4096];
	sqlite3 *db = NULL;
	run_out out;
#ifndef VELD_BENCH_SQLCIPHER
	veld_vfs *vfs = NULL;
	veld_err err;
#endif

	memset(&out, 0, sizeof out);
	snprintf(path, sizeof path, "%s/bench.db", dir);
	switch (engine) {
#ifdef VELD_BENCH_SQLCIPHER
	case ENG_SQLCIPHER: {
		unsigned char key[32];
		char sql[128];
		FILE *ur = fopen("/dev/urandom", "rb");
		int k, pos;
		if (!ur || fread(key, 1, sizeof key, ur) != sizeof key)
			die("cannot read /dev/urandom");
		fclose(ur);
		if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) != SQLITE_OK)
			die("open %s: %s", path, sqlite3_errmsg(db));
		/* A raw 256-bit key: no PBKDF2, like veld's page key. */
		pos = snprintf(sql, sizeof sql, "PRAGMA key = \"x'");
		for (k = 0; k < 32; k++)
			pos += snprintf(sql + pos, sizeof sql - (size_t)pos, "%02x", key[k]);
		snprintf(sql + pos, sizeof sql - (size_t)pos, "'\"");
		exec_or_die(db, sql);
		exec_or_die(db, "PRAGMA cipher_page_size = 4096");
		memset(key, 0, sizeof key);
		memset(sql, 0, sizeof sql);
		break;
	}
#else
	case ENG_SQLITE:
		if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) != SQLITE_OK)
			die("open %s: %s", path, sqlite3_errmsg(db));
		break;
	case ENG_VELD_AES:
	case ENG_VELD_XCHACHA: {
		unsigned char key[VELD_KEYBYTES];
		int cipher = engine == ENG_VELD_AES ? VELD_CIPHER_AES256GCM : VELD_CIPHER_XCHACHA20;
		if (sodium_init() < 0)
			die("libsodium failed to start");
		if (cipher == VELD_CIPHER_AES256GCM && !crypto_aead_aes256gcm_is_available()) {
			printf("skip no AES instructions on this CPU\n");
			return 0;
		}
		randombytes_buf(key, sizeof key);
		veld_err__clear(&err);
		if (veld_vfs__create(&vfs, veld_os_default(), key, cipher, &err) != 0)
			die("veld VFS: %s", err.msg);
		sodium_memzero(key, sizeof key);
		if (veld_vfs__open_db(&db, vfs, path, 1, &err) != 0)
			die("veld open: %s", err.msg);
		break;
	}
#endif
	default:
		die("engine %s is not in this build", engine_names[engine]);
	}
	common_pragmas(db, sync);
	run_workload(&out, db, rows);
	if (sqlite3_close(db) != SQLITE_OK)
		die("close: %s", sqlite3_errmsg(db));
#ifndef VELD_BENCH_SQLCIPHER
	veld_vfs__destroy(vfs);
#endif
	out.bytes = file_bytes(path);
	printf("ok %.6f %.6f %.6f %.6f %llu %lld\n", out.t[0], out.t[1], out.t[2], out.t[3], out.check,
	       out.bytes);
	return 0;
}

/* ---- the driver ---------------------------------------------------------- */
#ifndef VELD_BENCH_SQLCIPHER

static const char *const phase_names[N_PHASES] = {"insert", "range", "update", "scan"};

static void rmtree_shallow(const char *dir)
{
	char p[4200];
	static const char *const names[] = {"bench.db", "bench.db-wal", "bench.db-shm", "bench.db-journal"};
	size_t i;
	for (i = 0; i < sizeof names / sizeof names[0]; i++) {
		snprintf(p, sizeof p, "%s/%s", dir, names[i]);
		unlink(p);
	}
	rmdir(dir);
}

/* Run `engine` once in a child process; 1 with a result, 0 if skipped. */
static int spawn_run(run_out *out, const bench_opts *o, int engine, int run)
{
	char dir[4096], rows[32], line[512];
	const char *exe = engine == ENG_SQLCIPHER ? o->sqlcipher : o->self;
	int pfd[2], status = 0, got = 0;
	pid_t pid;
	FILE *f;

	snprintf(dir, sizeof dir, "%s/%s-%d-%d", o->workdir, engine_names[engine], run, (int)getpid());
	if (mkdir(dir, 0700) != 0 && errno != EEXIST)
		die("mkdir %s: %s", dir, strerror(errno));
	snprintf(rows, sizeof rows, "%ld", o->rows);
	if (pipe(pfd) != 0)
		die("pipe: %s", strerror(errno));
	fflush(stdout);
	pid = fork();
	if (pid < 0)
		die("fork: %s", strerror(errno));
	if (pid == 0) {
		close(pfd[0]);
		if (dup2(pfd[1], 1) < 0)
			_exit(127);
		execl(exe, exe, "--one", engine_names[engine], "--dir", dir, "-n", rows, "-s", o->sync,
		      (char *)NULL);
		fprintf(stderr, "veld_bench: cannot run %s: %s\n", exe, strerror(errno));
		_exit(127);
	}
	close(pfd[1]);
	f = fdopen(pfd[0], "r");
	if (!f)
		die("fdopen: %s", strerror(errno));
	memset(out, 0, sizeof *out);
	while (fgets(line, sizeof line, f)) {
		if (sscanf(line, "ok %lf %lf %lf %lf %llu %lld", &out->t[0], &out->t[1], &out->t[2], &out->t[3],
		           &out->check, &out->bytes) == 6)
			got = 1;
		else if (!strncmp(line, "skip ", 5))
			fprintf(stderr, "veld_bench: %s skipped: %s", engine_names[engine], line + 5);
	}
	fclose(f);
	waitpid(pid, &status, 0);
	rmtree_shallow(dir);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		die("%s run %d failed (status %d)", engine_names[engine], run, status);
	out->total = out->t[0] + out->t[1] + out->t[2] + out->t[3];
	return got;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double median(const double *v, int n)
{
	double s[MAX_RUNS];
	memcpy(s, v, (size_t)n * sizeof *v);
	qsort(s, (size_t)n, sizeof *s, cmp_double);
	return n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

static int drive(const bench_opts *o)
{
	run_out res[N_ENGINES][MAX_RUNS];
	int n_ok[N_ENGINES] = {0};
	int r, e, p, base_idx = -1;
	unsigned long long check = 0;
	int have_check = 0;
	double base_total = 0;

	printf("veld store benchmark: %ld rows, transactions of %d, %d runs (median), "
	       "journal_mode=WAL synchronous=%s\n",
	       o->rows, BATCH, o->runs, o->sync);
	printf("SQLite %s; veld %s\n", sqlite3_libversion(), veld_version());
	fflush(stdout);
	for (r = 0; r < o->runs; r++) {
		for (e = 0; e < o->n_engines; e++) {
			/* Rotate the order each run so no engine always goes first. */
			int eng = o->engines[(e + r) % o->n_engines];
			run_out out;
			if (!spawn_run(&out, o, eng, r))
				continue;
			if (have_check && out.check != check)
				die("%s read back different data (checksum %llx, expected %llx)", engine_names[eng],
				    out.check, check);
			check = out.check;
			have_check = 1;
			res[eng][n_ok[eng]++] = out;
			fprintf(stderr, "  run %d %-15s %7.2f s\n", r + 1, engine_names[eng], out.total);
		}
	}

	for (e = 0; e < o->n_engines; e++) {
		int eng = o->engines[e];
		if (eng == ENG_SQLITE && n_ok[eng]) {
			double v[MAX_RUNS];
			for (r = 0; r < n_ok[eng]; r++)
				v[r] = res[eng][r].total;
			base_total = median(v, n_ok[eng]);
			base_idx = eng;
		}
	}
	printf("\n%-16s %9s %9s", "engine", "total s", "x sqlite");
	for (p = 0; p < N_PHASES; p++)
		printf(" %9s", phase_names[p]);
	printf(" %9s\n", "db MB");
	for (e = 0; e < o->n_engines; e++) {
		int eng = o->engines[e];
		double v[MAX_RUNS], tot;
		if (!n_ok[eng])
			continue;
		for (r = 0; r < n_ok[eng]; r++)
			v[r] = res[eng][r].total;
		tot = median(v, n_ok[eng]);
		printf("%-16s %9.2f", engine_names[eng], tot);
		if (base_idx >= 0 && base_total > 0)
			printf(" %8.2fx", tot / base_total);
		else
			printf(" %9s", "-");
		for (p = 0; p < N_PHASES; p++) {
			for (r = 0; r < n_ok[eng]; r++)
				v[r] = res[eng][r].t[p];
			printf(" %9.3f", median(v, n_ok[eng]));
		}
		printf(" %9.1f\n", (double)res[eng][0].bytes / 1e6);
	}
	if (base_idx >= 0) {
		printf("\nper phase, x sqlite:\n%-16s", "engine");
		for (p = 0; p < N_PHASES; p++)
			printf(" %9s", phase_names[p]);
		printf("\n");
		for (e = 0; e < o->n_engines; e++) {
			int eng = o->engines[e];
			double v[MAX_RUNS], b[MAX_RUNS];
			if (!n_ok[eng])
				continue;
			printf("%-16s", engine_names[eng]);
			for (p = 0; p < N_PHASES; p++) {
				for (r = 0; r < n_ok[eng]; r++)
					v[r] = res[eng][r].t[p];
				for (r = 0; r < n_ok[base_idx]; r++)
					b[r] = res[base_idx][r].t[p];
				printf(" %8.2fx", median(v, n_ok[eng]) / median(b, n_ok[base_idx]));
			}
			printf("\n");
		}
	}
	printf("\n(db MB: size of the database file after the run, WAL checkpointed at close)\n");
	return 0;
}

#endif /* !VELD_BENCH_SQLCIPHER */

static int engine_by_name(const char *name)
{
	int e;
	for (e = 0; e < N_ENGINES; e++)
		if (!strcmp(engine_names[e], name))
			return e;
	return -1;
}

static void usage(void)
{
	fprintf(stderr,
	        "usage: veld_bench [-n ROWS] [-r RUNS] [-s FULL|NORMAL|OFF] [-d WORKDIR]\n"
	        "                  [--sqlcipher HELPER] [-e ENGINE,...]\n"
	        "engines: sqlite, veld-aes256gcm, veld-xchacha20, sqlcipher (needs --sqlcipher)\n");
	exit(2);
}

int main(int argc, char **argv)
{
	bench_opts o;
	const char *one = NULL, *engines = NULL;
	int i;

	memset(&o, 0, sizeof o);
	o.rows = 200000;
	o.runs = 3;
	o.sync = "FULL";
	o.workdir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	o.self = argv[0];
	for (i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "-h") || !strcmp(a, "--help"))
			usage();
		if (!v)
			usage();
		if (!strcmp(a, "-n"))
			o.rows = atol(v);
		else if (!strcmp(a, "-r"))
			o.runs = atoi(v);
		else if (!strcmp(a, "-s"))
			o.sync = v;
		else if (!strcmp(a, "-d") || !strcmp(a, "--dir"))
			o.workdir = v;
		else if (!strcmp(a, "--sqlcipher"))
			o.sqlcipher = v;
		else if (!strcmp(a, "-e"))
			engines = v;
		else if (!strcmp(a, "--one"))
			one = v;
		else
			usage();
		i++;
	}
	if (o.rows < BATCH || o.runs < 1 || o.runs > MAX_RUNS)
		die("need at least %d rows and 1..%d runs", BATCH, MAX_RUNS);
	if (strcmp(o.sync, "FULL") && strcmp(o.sync, "NORMAL") && strcmp(o.sync, "OFF"))
		die("-s takes FULL, NORMAL or OFF");

	if (one) {
		int e = engine_by_name(one);
		if (e < 0)
			usage();
		return run_one(e, o.workdir, o.rows, o.sync);
	}
#ifdef VELD_BENCH_SQLCIPHER
	(void)engines;
	die("this is the SQLCipher helper of veld_bench; run veld_bench");
#else
	if (engines) {
		char *copy = strdup(engines), *tok, *save = NULL;
		if (!copy)
			die("out of memory");
		for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
			int e = engine_by_name(tok);
			if (e < 0)
				usage();
			o.engines[o.n_engines++] = e;
			if (o.n_engines == N_ENGINES)
				break;
		}
		free(copy);
	} else {
		o.engines[o.n_engines++] = ENG_SQLITE;
		o.engines[o.n_engines++] = ENG_VELD_AES;
		o.engines[o.n_engines++] = ENG_VELD_XCHACHA;
		if (o.sqlcipher && access(o.sqlcipher, X_OK) == 0)
			o.engines[o.n_engines++] = ENG_SQLCIPHER;
		else
			fprintf(stderr, "veld_bench: no SQLCipher helper; its row is left out\n");
	}
	for (i = 0; i < o.n_engines; i++)
		if (o.engines[i] == ENG_SQLCIPHER && !o.sqlcipher)
			die("engine sqlcipher needs --sqlcipher HELPER");
	return drive(&o);
#endif
}
