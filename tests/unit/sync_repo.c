/*
** tests/unit/sync_repo.c — the git layer of sync/ (sync/git/): trees
** updated at a few paths with empty trees pruned, commits signed in the
** veldsig header and every way their verification must fail, the commits a
** fetch brought, tree diffs, refs, fetch and push between repositories on
** paths (and over the smart-HTTP hub when lighttpd is there), refusals,
** credentials and a progress callback that cancels, and the repack that makes erased keys disappear.  The git
** CLI cross-checks what libgit2 wrote (fsck --strict, cat-file).
*/
#include "testutil.h"

#include "sync.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sodium.h>

#define DEV1 "0123456789abcdef0123456789abcdef"
#define DEV2 "fedcba9876543210fedcba9876543210"
#define T0   ((int64_t)1700000000123)
#define EMPTY_TREE "4b825dc642cb6eb9a060e54bf8d69288fbee4904"

/* ---- helpers ------------------------------------------------------------ */

typedef struct keypair {
	unsigned char pk[crypto_sign_PUBLICKEYBYTES];
	unsigned char sk[crypto_sign_SECRETKEYBYTES];
} keypair;

static int sign_cb(unsigned char *sig64, const unsigned char *msg, size_t len, void *payload)
{
	const keypair *k = payload;
	return crypto_sign_detached(sig64, NULL, msg, len, k->sk);
}

/* Public keys by signer: up to two entries. */
typedef struct keytab {
	const char *name[2];
	const unsigned char *pk[2];
} keytab;

static int pubkey_cb(unsigned char *pk32, const char *signer, void *payload)
{
	const keytab *t = payload;
	int i;
	for (i = 0; i < 2; i++)
		if (t->name[i] && strcmp(t->name[i], signer) == 0) {
			memcpy(pk32, t->pk[i], 32);
			return 0;
		}
	return VELD_ENOTFOUND;
}

static veld_repo *new_repo(char **dir, const char *tag)
{
	veld_repo *r = NULL;
	veld_err err = {0};
	*dir = veld_test_tmpdir(tag);
	assert_int_equal(veld_repo__init(&r, veld_os_default(), *dir, &err), 0);
	return r;
}

static void drop_repo(veld_repo *r, char *dir)
{
	veld_repo__free(r);
	veld_test_rmtree(dir);
	free(dir);
}

static git_oid blob(veld_repo *r, const char *text)
{
	git_oid id;
	veld_err err = {0};
	assert_int_equal(veld_repo__blob_write(&id, r, text, strlen(text), &err), 0);
	return id;
}

/* Output of a shell command, malloc'd. */
static char *run_out(const char *cmd)
{
	FILE *p = popen(cmd, "r");
	char *buf = NULL;
	size_t len = 0, cap = 0, n;
	assert_non_null(p);
	for (;;) {
		if (cap - len < 1024) {
			cap = cap ? cap * 2 : 4096;
			buf = realloc(buf, cap);
			assert_non_null(buf);
		}
		n = fread(buf + len, 1, cap - len - 1, p);
		if (n == 0)
			break;
		len += n;
	}
	buf[len] = '\0';
	pclose(p);
	return buf;
}

static int count_loose(const char *dir)
{
	int i, n = 0;
	char sub[4200];
	for (i = 0; i < 256; i++) {
		DIR *d;
		struct dirent *e;
		snprintf(sub, sizeof sub, "%s/objects/%02x", dir, i);
		if (!(d = opendir(sub)))
			continue;
		while ((e = readdir(d)))
			if (strlen(e->d_name) == 38)
				n++;
		closedir(d);
	}
	return n;
}

static int count_packs(const char *dir)
{
	char sub[4200];
	DIR *d;
	struct dirent *e;
	int n = 0;
	snprintf(sub, sizeof sub, "%s/objects/pack", dir);
	if (!(d = opendir(sub)))
		return 0;
	while ((e = readdir(d)))
		if (strstr(e->d_name, ".pack"))
			n++;
	closedir(d);
	return n;
}

static git_oid tree_of(veld_repo *r, const veld_tree_change *ch, size_t n, const git_oid *base)
{
	git_oid t;
	veld_err err = {0};
	int rc = veld_repo__tree_update(&t, r, base, ch, n, &err);
	if (rc)
		fail_msg("tree update: %s", err.msg);
	return t;
}

static git_oid commit(veld_repo *r, const git_oid *tree, const git_oid *parents, size_t np, const char *signer,
                      keypair *k)
{
	git_oid c;
	veld_err err = {0};
	int rc = veld_repo__commit(&c, r, tree, parents, np, signer, T0, "veld sync", sign_cb, k, &err);
	if (rc)
		fail_msg("commit: %s", err.msg);
	return c;
}

/* A tree holding one blob `text` at `path`, committed on top of `parent`. */
static git_oid commit_file(veld_repo *r, const git_oid *parent, const char *path, const char *text, keypair *k)
{
	git_oid b = blob(r, text), t, base;
	veld_tree_change ch = {path, &b};
	veld_err err = {0};
	if (parent)
		assert_int_equal(veld_repo__commit_tree(&base, r, parent, &err), 0);
	t = tree_of(r, &ch, 1, parent ? &base : NULL);
	return commit(r, &t, parent, parent ? 1 : 0, DEV1, k);
}

static int entry_exists(veld_repo *r, const git_oid *tree_id, const char *path)
{
	git_tree *t = NULL;
	git_tree_entry *e = NULL;
	int rc;
	assert_int_equal(git_tree_lookup(&t, veld_repo__git(r), tree_id), 0);
	rc = git_tree_entry_bypath(&e, t, path);
	git_tree_entry_free(e);
	git_tree_free(t);
	if (rc == GIT_ENOTFOUND)
		return 0;
	assert_int_equal(rc, 0);
	return 1;
}

/* ---- handle ------------------------------------------------------------- */

static void test_sync_repo__init_open_errors(void **state)
{
	char *dir = veld_test_tmpdir("repo-init"), *missing;
	veld_repo *r = NULL, *r2 = NULL;
	veld_err err = {0};
	(void)state;

	assert_int_equal(veld_repo__init(&r, veld_os_default(), dir, &err), 0);
	assert_non_null(veld_repo__git(r));
	assert_true(git_repository_is_bare(veld_repo__git(r)));
	assert_int_equal(veld_repo__open(&r2, veld_os_default(), dir, &err), 0);
	veld_repo__free(r2);
	r2 = NULL;
	/* A second init on the same (non-empty) directory is refused. */
	assert_int_equal(veld_repo__init(&r2, veld_os_default(), dir, &err), VELD_EEXISTS);
	assert_null(r2);
	/* Opening what is not a repository. */
	missing = veld_test_path(dir, "nothing-here");
	assert_int_equal(veld_repo__open(&r2, veld_os_default(), missing, &err), VELD_ENOTFOUND);
	assert_non_null(strstr(err.msg, "nothing-here"));
	assert_null(r2);
	veld_repo__free(NULL);
	free(missing);
	drop_repo(r, dir);
}

static void test_sync_repo__blobs_and_corruption(void **state)
{
	char *dir;
	veld_repo *r = new_repo(&dir, "repo-blob");
	veld_err err = {0};
	git_oid id, missing;
	unsigned char *buf = NULL;
	size_t len = 0;
	char hex[GIT_OID_HEXSZ + 1], path[4300];
	(void)state;

	id = blob(r, "sealed bytes");
	assert_int_equal(veld_repo__blob_read(&buf, &len, r, &id, &err), 0);
	assert_int_equal(len, 12);
	assert_memory_equal(buf, "sealed bytes", 12);
	free(buf);
	/* Empty blob. */
	assert_int_equal(veld_repo__blob_write(&id, r, NULL, 0, &err), 0);
	assert_int_equal(veld_repo__blob_read(&buf, &len, r, &id, &err), 0);
	assert_int_equal(len, 0);
	free(buf);

	memset(&missing, 0x42, sizeof missing);
	assert_int_equal(veld_repo__blob_read(&buf, &len, r, &missing, &err), VELD_ENOTFOUND);
	assert_null(buf);

	/* A damaged loose object (as git writes them) is an integrity error,
	** not "not found". */
	assert_int_equal(veld_test_sh("cd '%s' && printf 'a blob that will be damaged on disk' | git hash-object -w --stdin "
	                        ">/dev/null", dir), 0);
	assert_int_equal(git_odb_hash(&id, "a blob that will be damaged on disk", 35, GIT_OBJECT_BLOB), 0);
	git_oid_tostr(hex, sizeof hex, &id);
	snprintf(path, sizeof path, "%s/objects/%.2s/%s", dir, hex, hex + 2);
	assert_int_equal(chmod(path, 0644), 0);
	veld_test_flip_byte(path, 10);
	assert_int_equal(veld_repo__blob_read(&buf, &len, r, &id, &err), VELD_EINTEGRITY);
	assert_non_null(strstr(err.msg, hex));
	assert_null(buf);
	drop_repo(r, dir);
}

/* ---- trees -------------------------------------------------------------- */

static void test_sync_repo__tree_nested_paths_and_pruning(void **state)
{
	char *dir;
	veld_repo *r = new_repo(&dir, "repo-tree");
	veld_err err = {0};
	git_oid b1 = blob(r, "one"), b2 = blob(r, "two"), b3 = blob(r, "three"), t1, t2, t3, t4, got;
	char hex[GIT_OID_HEXSZ + 1];
	(void)state;

	{
		veld_tree_change ch[] = {{"cases/ab/c1/r1", &b1}, {"cases/ab/c1/r2", &b2}, {"registry/org", &b3}};
		t1 = tree_of(r, ch, 3, NULL);
	}
	assert_int_equal(veld_repo__tree_lookup(&got, r, &t1, "cases/ab/c1/r1", &err), 0);
	assert_true(git_oid_equal(&got, &b1));
	assert_int_equal(veld_repo__tree_lookup(&got, r, &t1, "registry/org", &err), 0);
	assert_true(git_oid_equal(&got, &b3));
	/* A directory is not a blob; an absent path is not found. */
	assert_int_equal(veld_repo__tree_lookup(&got, r, &t1, "cases/ab", &err), VELD_ENOTFOUND);
	assert_int_equal(veld_repo__tree_lookup(&got, r, &t1, "cases/ab/c1/r9", &err), VELD_ENOTFOUND);
	assert_int_equal(veld_repo__tree_lookup(&got, r, &t1, "/cases", &err), VELD_EINVALID);

	/* Removing one of two leaves keeps the directory. */
	{
		veld_tree_change ch[] = {{"cases/ab/c1/r1", NULL}};
		t2 = tree_of(r, ch, 1, &t1);
	}
	assert_false(entry_exists(r, &t2, "cases/ab/c1/r1"));
	assert_true(entry_exists(r, &t2, "cases/ab/c1/r2"));

	/* Removing the last leaf prunes every tree that became empty. */
	{
		veld_tree_change ch[] = {{"cases/ab/c1/r2", NULL}};
		t3 = tree_of(r, ch, 1, &t2);
	}
	assert_false(entry_exists(r, &t3, "cases/ab/c1"));
	assert_false(entry_exists(r, &t3, "cases/ab"));
	assert_false(entry_exists(r, &t3, "cases"));
	assert_true(entry_exists(r, &t3, "registry/org"));
	{
		/* Same tree as if "cases" had never been there. */
		veld_tree_change ch[] = {{"registry/org", &b3}};
		t4 = tree_of(r, ch, 1, NULL);
		assert_true(git_oid_equal(&t3, &t4));
	}

	/* Removing an absent path is a no-op, also under an absent directory. */
	{
		veld_tree_change ch[] = {{"cases/zz/nope/nope", NULL}, {"registry/nope", NULL}};
		t4 = tree_of(r, ch, 2, &t3);
		assert_true(git_oid_equal(&t3, &t4));
		t4 = tree_of(r, ch, 2, NULL);
		assert_string_equal(git_oid_tostr(hex, sizeof hex, &t4), EMPTY_TREE);
	}
	/* Removing everything leaves the empty tree. */
	{
		veld_tree_change ch[] = {{"registry/org", NULL}};
		t4 = tree_of(r, ch, 1, &t3);
		assert_string_equal(git_oid_tostr(hex, sizeof hex, &t4), EMPTY_TREE);
	}
	/* Malformed input. */
	{
		veld_tree_change dup[] = {{"a/b", &b1}, {"a/b", NULL}};
		veld_tree_change bad[] = {{"a//b", &b1}};
		veld_tree_change dot[] = {{"a/../b", &b1}};
		veld_tree_change trail[] = {{"a/b/", &b1}};
		assert_int_equal(veld_repo__tree_update(&t4, r, NULL, dup, 2, &err), VELD_EINVALID);
		assert_int_equal(veld_repo__tree_update(&t4, r, NULL, bad, 1, &err), VELD_EINVALID);
		assert_int_equal(veld_repo__tree_update(&t4, r, NULL, dot, 1, &err), VELD_EINVALID);
		assert_int_equal(veld_repo__tree_update(&t4, r, NULL, trail, 1, &err), VELD_EINVALID);
	}
	/* git agrees the trees are well formed. */
	assert_int_equal(veld_test_sh("git -C '%s' fsck --strict --no-dangling >/dev/null 2>&1", dir), 0);
	drop_repo(r, dir);
}

static int count_diff_cb(const char *path, const git_oid *o, const git_oid *n, void *payload)
{
	(void)path;
	(void)o;
	(void)n;
	(*(int *)payload)++;
	return 0;
}

/* 10,000 records under 256 fan-out dirs: changing one writes one blob and
** the trees on its path (4), and leaves every other subtree as it was. */
/* Objects in the newest pack of a repository's objects/pack (0: none). */
static long newest_pack_objects(const char *repo_dir)
{
	char cmd[4600], *out;
	long n;
	snprintf(cmd, sizeof cmd, "i=$(ls -t '%s'/objects/pack/*.idx 2>/dev/null | head -1); "
	         "[ -n \"$i\" ] && git show-index < \"$i\" | wc -l", repo_dir);
	out = run_out(cmd);
	n = atol(out);
	free(out);
	return n;
}

static void test_sync_repo__tree_update_cost_is_proportional(void **state)
{
	enum { N = 10000 };
	char *dir;
	veld_repo *r = new_repo(&dir, "repo-cost");
	veld_err err = {0};
	veld_tree_change *ch = calloc(N, sizeof *ch);
	char(*paths)[80] = calloc(N, sizeof *paths);
	git_oid *ids = calloc(N, sizeof *ids), t1, t2, b;
	git_tree *a = NULL, *c = NULL;
	int i, nd = 0;
	(void)state;
	assert_non_null(ch);
	assert_non_null(paths);
	assert_non_null(ids);

	/* Setting up 10,000 blobs and 10,000 trees with an fsync each takes
	** half a minute: fsync off for the setup only (a process-wide option). */
	assert_int_equal(git_libgit2_opts(GIT_OPT_ENABLE_FSYNC_GITDIR, 0), 0);
	for (i = 0; i < N; i++) {
		char text[32];
		snprintf(paths[i], sizeof paths[i], "cases/%02x/case%05d/rec%05d", i % 256, i, i);
		/* 64 distinct blobs are enough: the trees are what is measured. */
		snprintf(text, sizeof text, "record %d", i % 64);
		ids[i] = i < 64 ? blob(r, text) : ids[i % 64];
		ch[i].path = paths[i];
		ch[i].id = &ids[i];
	}
	assert_int_equal(veld_repo__tree_update(&t1, r, NULL, ch, N, &err), 0);
	assert_int_equal(git_libgit2_opts(GIT_OPT_ENABLE_FSYNC_GITDIR, 1), 0);

	b = blob(r, "record 4242, edited");
	assert_int_equal(veld_repo__flush(r, &err), 0);
	{
		veld_tree_change one = {paths[4242], &b};
		t2 = tree_of(r, &one, 1, &t1);
	}
	/* root, cases, cases/92, cases/92/case04242: one pack of four */
	sleep(1); /* ls -t: the new pack is the newest */
	assert_int_equal(veld_repo__flush(r, &err), 0);
	assert_int_equal(newest_pack_objects(dir), 4);
	assert_int_equal(count_loose(dir), 0);

	assert_int_equal(git_tree_lookup(&a, veld_repo__git(r), &t1), 0);
	assert_int_equal(git_tree_lookup(&c, veld_repo__git(r), &t2), 0);
	for (i = 0; i < 256; i++) {
		char sub[16];
		git_tree_entry *ea = NULL, *ec = NULL;
		snprintf(sub, sizeof sub, "cases/%02x", i);
		assert_int_equal(git_tree_entry_bypath(&ea, a, sub), 0);
		assert_int_equal(git_tree_entry_bypath(&ec, c, sub), 0);
		if (i == 4242 % 256)
			assert_false(git_oid_equal(git_tree_entry_id(ea), git_tree_entry_id(ec)));
		else
			assert_true(git_oid_equal(git_tree_entry_id(ea), git_tree_entry_id(ec)));
		git_tree_entry_free(ea);
		git_tree_entry_free(ec);
	}
	/* The objects are in packs; as loose files, one of them can go. */
	assert_int_equal(veld_test_sh("cd '%s/objects/pack' && mkdir -p ../../unpacked && for p in pack-*.pack; do "
	                        "mv \"$p\" ../../unpacked/ && rm -f \"${p%%.pack}.idx\" && "
	                        "git -C ../.. unpack-objects -q < \"../../unpacked/$p\" || exit 1; done", dir), 0);
	/* And the diff sees exactly that one record, reading only the trees on
	** its path: with every other fan-out tree deleted from disk (and a fresh
	** handle, so nothing is cached) it still works, where libgit2's
	** git_diff_tree_to_tree, which expands every subtree, fails. */
	for (i = 0; i < 256; i++) {
		char sub[16], hex[GIT_OID_HEXSZ + 1], file[4300];
		git_tree_entry *e = NULL;
		if (i == 4242 % 256)
			continue;
		snprintf(sub, sizeof sub, "cases/%02x", i);
		assert_int_equal(git_tree_entry_bypath(&e, a, sub), 0);
		git_oid_tostr(hex, sizeof hex, git_tree_entry_id(e));
		snprintf(file, sizeof file, "%s/objects/%.2s/%s", dir, hex, hex + 2);
		assert_int_equal(unlink(file), 0);
		git_tree_entry_free(e);
	}
	{
		veld_repo *fresh = NULL;
		git_diff *gd = NULL;
		assert_int_equal(veld_repo__open(&fresh, veld_os_default(), dir, &err), 0);
		assert_int_equal(veld_repo__diff(fresh, &t1, &t2, count_diff_cb, &nd, &err), 0);
		assert_int_equal(nd, 1);
		git_tree_free(a);
		git_tree_free(c);
		assert_int_equal(git_tree_lookup(&a, veld_repo__git(fresh), &t1), 0);
		assert_int_equal(git_tree_lookup(&c, veld_repo__git(fresh), &t2), 0);
		assert_true(git_diff_tree_to_tree(&gd, veld_repo__git(fresh), a, c, NULL) < 0);
		git_diff_free(gd);
		git_tree_free(a);
		git_tree_free(c);
		a = c = NULL;
		veld_repo__free(fresh);
	}
	git_tree_free(a);
	git_tree_free(c);
	free(ch);
	free(paths);
	free(ids);
	drop_repo(r, dir);
}

/* ---- signed commits ----------------------------------------------------- */

static void test_sync_repo__commit_sign_verify_round_trip(void **state)
{
	char *dir, *out, cmd[4400], hex[GIT_OID_HEXSZ + 1], signer[65];
	veld_repo *r = new_repo(&dir, "repo-sig");
	veld_err err = {0};
	keypair k;
	keytab tab = {{DEV1, NULL}, {k.pk, NULL}};
	git_oid c1, c2, tree, parents[2];
	size_t np;
	(void)state;

	crypto_sign_keypair(k.pk, k.sk);
	c1 = commit_file(r, NULL, "cases/ab/c/r", "v1", &k);
	c2 = commit_file(r, &c1, "cases/ab/c/r", "v2", &k);
	assert_int_equal(veld_repo__ref_set(r, "refs/veld/devices/" DEV1, &c2, &err), 0);

	assert_int_equal(veld_repo__commit_verify(signer, sizeof signer, r, &c1, pubkey_cb, &tab, &err), 0);
	assert_string_equal(signer, DEV1);
	assert_int_equal(veld_repo__commit_verify(signer, sizeof signer, r, &c2, pubkey_cb, &tab, &err), 0);
	assert_int_equal(veld_repo__commit_parents(parents, 2, &np, r, &c2, &err), 0);
	assert_int_equal(np, 1);
	assert_true(git_oid_equal(&parents[0], &c1));
	assert_int_equal(veld_repo__commit_parents(parents, 0, &np, r, &c2, &err), VELD_EINVALID);
	assert_int_equal(np, 1);
	assert_int_equal(veld_repo__commit_tree(&tree, r, &c2, &err), 0);

	/* What git sees: the header, the author, and a clean fsck. */
	snprintf(cmd, sizeof cmd, "git -C '%s' cat-file -p %s", dir, git_oid_tostr(hex, sizeof hex, &c2));
	out = run_out(cmd);
	assert_non_null(strstr(out, "\nveldsig " DEV1 " "));
	assert_non_null(strstr(out, "\nauthor " DEV1 " <" DEV1 "@veld.invalid> 1700000000 +0000\n"));
	assert_non_null(strstr(out, "\ncommitter " DEV1 " <" DEV1 "@veld.invalid> 1700000000 +0000\n"));
	assert_non_null(strstr(out, "\n\nveld sync"));
	{
		/* 88 base64 characters, then the end of the header line. */
		const char *v = strstr(out, "\nveldsig " DEV1 " ") + strlen("\nveldsig " DEV1 " ");
		assert_int_equal(strcspn(v, "\n"), 88);
	}
	free(out);
	assert_int_equal(veld_test_sh("git -C '%s' fsck --strict >/dev/null 2>&1", dir), 0);

	/* Bad input to commit. */
	assert_int_equal(veld_repo__commit(&c1, r, &tree, NULL, 0, "not a signer", T0, "m", sign_cb, &k, &err),
	                 VELD_EINVALID);
	assert_int_equal(veld_repo__commit(&c1, r, &tree, NULL, 0, "", T0, "m", sign_cb, &k, &err), VELD_EINVALID);
	sodium_memzero(&k, sizeof k);
	drop_repo(r, dir);
}

/* A commit with the same header as a signed one and a changed message,
** written straight into the object database. */
static git_oid tamper_message(veld_repo *r, const git_oid *c)
{
	git_odb *odb = NULL;
	git_odb_object *o = NULL;
	git_oid out;
	char *copy, *msg;
	size_t len;
	assert_int_equal(git_repository_odb(&odb, veld_repo__git(r)), 0);
	assert_int_equal(git_odb_read(&o, odb, c), 0);
	len = git_odb_object_size(o);
	copy = malloc(len);
	assert_non_null(copy);
	memcpy(copy, git_odb_object_data(o), len);
	msg = strstr(copy, "\n\nveld sync");
	assert_non_null(msg);
	msg[2] ^= 0x20; /* "Veld sync" */
	assert_int_equal(git_odb_write(&out, odb, copy, len, GIT_OBJECT_COMMIT), 0);
	free(copy);
	git_odb_object_free(o);
	git_odb_free(odb);
	return out;
}

static void test_sync_repo__commit_verify_failures(void **state)
{
	char *dir, signer[65], hex[GIT_OID_HEXSZ + 1];
	veld_repo *r = new_repo(&dir, "repo-sigfail");
	veld_err err = {0};
	keypair k1, k2;
	keytab tab;
	git_oid c, bad, unsigned_c, tree, missing;
	git_signature *who = NULL;
	git_tree *t = NULL;
	git_buf buf = {0};
	int rc;
	(void)state;

	crypto_sign_keypair(k1.pk, k1.sk);
	crypto_sign_keypair(k2.pk, k2.sk);
	memset(&tab, 0, sizeof tab);
	tab.name[0] = DEV1;
	tab.pk[0] = k1.pk;
	tab.name[1] = DEV2;
	tab.pk[1] = k2.pk;
	c = commit_file(r, NULL, "cases/ab/c/r", "v1", &k1);
	assert_int_equal(veld_repo__commit_tree(&tree, r, &c, &err), 0);

	/* A flipped byte in the message. */
	bad = tamper_message(r, &c);
	assert_false(git_oid_equal(&bad, &c));
	rc = veld_repo__commit_verify(signer, sizeof signer, r, &bad, pubkey_cb, &tab, &err);
	assert_int_equal(rc, VELD_EINTEGRITY);
	assert_non_null(strstr(err.msg, "bad signature"));
	assert_non_null(strstr(err.msg, git_oid_tostr(hex, sizeof hex, &bad)));
	assert_string_equal(signer, DEV1);

	/* An unsigned commit. */
	assert_int_equal(git_signature_new(&who, DEV1, DEV1 "@veld.invalid", 1700000000, 0), 0);
	assert_int_equal(git_tree_lookup(&t, veld_repo__git(r), &tree), 0);
	assert_int_equal(git_commit_create(&unsigned_c, veld_repo__git(r), NULL, who, who, NULL, "veld sync", t, 0, NULL),
	                 0);
	rc = veld_repo__commit_verify(signer, sizeof signer, r, &unsigned_c, pubkey_cb, &tab, &err);
	assert_int_equal(rc, VELD_EINTEGRITY);
	assert_non_null(strstr(err.msg, "not signed"));
	assert_non_null(strstr(err.msg, git_oid_tostr(hex, sizeof hex, &unsigned_c)));

	/* Unknown signer. */
	tab.name[0] = "someone-else";
	rc = veld_repo__commit_verify(signer, sizeof signer, r, &c, pubkey_cb, &tab, &err);
	assert_int_equal(rc, VELD_EINTEGRITY);
	assert_non_null(strstr(err.msg, "unknown signer " DEV1));
	tab.name[0] = DEV1;

	/* Signed by another key (the signer's registered key is k2). */
	tab.pk[0] = k2.pk;
	rc = veld_repo__commit_verify(signer, sizeof signer, r, &c, pubkey_cb, &tab, &err);
	assert_int_equal(rc, VELD_EINTEGRITY);
	assert_non_null(strstr(err.msg, "bad signature by " DEV1));
	tab.pk[0] = k1.pk;

	/* The signature of DEV1 presented as DEV2's. */
	{
		git_oid relabelled;
		git_buf sig = {0}, data = {0};
		char header[200];
		assert_int_equal(git_commit_extract_signature(&sig, &data, veld_repo__git(r), &c, "veldsig"), 0);
		snprintf(header, sizeof header, DEV2 "%s", strchr(sig.ptr, ' '));
		assert_int_equal(git_commit_create_with_signature(&relabelled, veld_repo__git(r), data.ptr, header, "veldsig"),
		                 0);
		rc = veld_repo__commit_verify(signer, sizeof signer, r, &relabelled, pubkey_cb, &tab, &err);
		assert_int_equal(rc, VELD_EINTEGRITY);
		assert_non_null(strstr(err.msg, "bad signature by " DEV2));
		git_buf_dispose(&sig);
		git_buf_dispose(&data);
	}

	/* Malformed headers. */
	{
		static const char *const bad_headers[] = {
		        DEV1,                                  /* no signature */
		        DEV1 " not-base64!",                   /* not base64 */
		        DEV1 "  AAAA",                         /* two spaces */
		        "dev<1> AAAA",                         /* bad signer id */
		        DEV1 " QUFBQQ==",                      /* too short */
		};
		size_t i;
		assert_int_equal(git_commit_create_buffer(&buf, veld_repo__git(r), who, who, NULL, "veld sync", t, 0, NULL),
		                 0);
		for (i = 0; i < sizeof bad_headers / sizeof bad_headers[0]; i++) {
			git_oid m;
			assert_int_equal(git_commit_create_with_signature(&m, veld_repo__git(r), buf.ptr, bad_headers[i],
			                                                  "veldsig"),
			                 0);
			rc = veld_repo__commit_verify(signer, sizeof signer, r, &m, pubkey_cb, &tab, &err);
			assert_int_equal(rc, VELD_EINTEGRITY);
			assert_non_null(strstr(err.msg, "malformed"));
		}
	}

	/* A second veldsig header added to a validly signed commit. */
	{
		git_odb *odb = NULL;
		git_odb_object *o = NULL;
		git_oid twice;
		char *raw;
		assert_int_equal(git_repository_odb(&odb, veld_repo__git(r)), 0);
		assert_int_equal(git_odb_read(&o, odb, &c), 0);
		raw = calloc(1, git_odb_object_size(o) + 1);
		assert_non_null(raw);
		memcpy(raw, git_odb_object_data(o), git_odb_object_size(o));
		assert_int_equal(git_commit_create_with_signature(&twice, veld_repo__git(r), raw,
		                                                  DEV1 " QUFBQQ==", "veldsig"),
		                 0);
		rc = veld_repo__commit_verify(signer, sizeof signer, r, &twice, pubkey_cb, &tab, &err);
		assert_int_equal(rc, VELD_EINTEGRITY);
		free(raw);
		git_odb_object_free(o);
		git_odb_free(odb);
	}

	/* A commit that is not there. */
	memset(&missing, 0x17, sizeof missing);
	rc = veld_repo__commit_verify(signer, sizeof signer, r, &missing, pubkey_cb, &tab, &err);
	assert_int_equal(rc, VELD_ENOTFOUND);

	/* And the good one still verifies. */
	assert_int_equal(veld_repo__commit_verify(signer, sizeof signer, r, &c, pubkey_cb, &tab, &err), 0);
	git_buf_dispose(&buf);
	git_tree_free(t);
	git_signature_free(who);
	sodium_memzero(&k1, sizeof k1);
	sodium_memzero(&k2, sizeof k2);
	drop_repo(r, dir);
}

/* ---- history and diff --------------------------------------------------- */

static void test_sync_repo__new_commits_order_and_stops(void **state)
{
	char *dir;
	veld_repo *r = new_repo(&dir, "repo-walk");
	veld_err err = {0};
	keypair k;
	git_oid a, b, c, x, m, tree, *list = NULL, ghost, stops[3];
	size_t n = 0, i;
	(void)state;

	crypto_sign_keypair(k.pk, k.sk);
	a = commit_file(r, NULL, "f", "a", &k);
	b = commit_file(r, &a, "f", "b", &k);
	c = commit_file(r, &b, "f", "c", &k);
	x = commit_file(r, &a, "g", "x", &k); /* a side branch from a */
	{
		git_oid ps[2];
		ps[0] = c;
		ps[1] = x;
		assert_int_equal(veld_repo__commit_tree(&tree, r, &c, &err), 0);
		m = commit(r, &tree, ps, 2, DEV1, &k);
	}

	/* Everything, oldest first. */
	assert_int_equal(veld_repo__new_commits(&list, &n, r, &c, NULL, 0, &err), 0);
	assert_int_equal(n, 3);
	assert_true(git_oid_equal(&list[0], &a));
	assert_true(git_oid_equal(&list[1], &b));
	assert_true(git_oid_equal(&list[2], &c));
	free(list);

	/* Stop at b: only c. A stop that is not in the repository is ignored. */
	memset(&ghost, 0x55, sizeof ghost);
	stops[0] = ghost;
	stops[1] = b;
	assert_int_equal(veld_repo__new_commits(&list, &n, r, &c, stops, 2, &err), 0);
	assert_int_equal(n, 1);
	assert_true(git_oid_equal(&list[0], &c));
	free(list);

	/* Head already known: nothing. */
	assert_int_equal(veld_repo__new_commits(&list, &n, r, &c, &c, 1, &err), 0);
	assert_int_equal(n, 0);
	free(list);

	/* A merge: parents always before children, the merge last. */
	assert_int_equal(veld_repo__new_commits(&list, &n, r, &m, &a, 1, &err), 0);
	assert_int_equal(n, 4);
	{
		size_t pb = 9, pc = 9, px = 9;
		for (i = 0; i < n; i++) {
			if (git_oid_equal(&list[i], &b))
				pb = i;
			if (git_oid_equal(&list[i], &c))
				pc = i;
			if (git_oid_equal(&list[i], &x))
				px = i;
		}
		assert_true(pb < pc);
		assert_true(px < 3);
		assert_true(pc < 3);
		assert_true(git_oid_equal(&list[3], &m));
	}
	free(list);

	/* An unknown head. */
	assert_int_equal(veld_repo__new_commits(&list, &n, r, &ghost, NULL, 0, &err), VELD_ENOTFOUND);
	assert_null(list);
	sodium_memzero(&k, sizeof k);
	drop_repo(r, dir);
}

typedef struct diff_log {
	char text[2048];
	int stop_after;
	int calls;
} diff_log;

static int log_diff_cb(const char *path, const git_oid *o, const git_oid *n, void *payload)
{
	diff_log *l = payload;
	size_t len = strlen(l->text);
	char oh[8] = "-", nh[8] = "-";
	if (o)
		git_oid_tostr(oh, 5, o);
	if (n)
		git_oid_tostr(nh, 5, n);
	snprintf(l->text + len, sizeof l->text - len, "%s %s %s;", path, oh, nh);
	l->calls++;
	return l->stop_after && l->calls >= l->stop_after ? 7 : 0;
}

/* The same report made by git_diff_tree_to_tree (no renames). */
static void oracle_diff(diff_log *l, veld_repo *r, const git_oid *ta, const git_oid *tb)
{
	git_tree *a = NULL, *b = NULL;
	git_diff *d = NULL;
	size_t i;
	memset(l, 0, sizeof *l);
	if (ta)
		assert_int_equal(git_tree_lookup(&a, veld_repo__git(r), ta), 0);
	if (tb)
		assert_int_equal(git_tree_lookup(&b, veld_repo__git(r), tb), 0);
	assert_int_equal(git_diff_tree_to_tree(&d, veld_repo__git(r), a, b, NULL), 0);
	for (i = 0; i < git_diff_num_deltas(d); i++) {
		const git_diff_delta *dd = git_diff_get_delta(d, i);
		int added = dd->status == GIT_DELTA_ADDED, deleted = dd->status == GIT_DELTA_DELETED;
		assert_true(added || deleted || dd->status == GIT_DELTA_MODIFIED);
		log_diff_cb(dd->new_file.path, added ? NULL : &dd->old_file.id, deleted ? NULL : &dd->new_file.id, l);
	}
	git_diff_free(d);
	git_tree_free(a);
	git_tree_free(b);
}

static void test_sync_repo__diff_matches_libgit2(void **state)
{
	char *dir;
	veld_repo *r = new_repo(&dir, "repo-diff2");
	veld_err err = {0};
	git_oid b1 = blob(r, "1"), b2 = blob(r, "2"), b3 = blob(r, "3"), t[5];
	diff_log mine, theirs;
	int i, j;
	(void)state;

	/* Names that sort differently as paths and as plain names ('-' < '.' < '/' < '0'),
	** a blob replaced by a directory of the same name, deep adds and removals. */
	{
		veld_tree_change ch[] = {{"a", &b1}, {"a-b", &b2}, {"a.b", &b3}, {"a0", &b1}, {"d/e/f", &b1}, {"d/g", &b2}};
		t[0] = tree_of(r, ch, 6, NULL);
	}
	{
		/* A file cannot become a directory within one update (libgit2:
		** "D/F conflict"): two steps. */
		veld_tree_change ch1[] = {{"a", NULL}, {"a.b", &b1}, {"d/e/f", NULL}};
		veld_tree_change ch2[] = {{"a/x", &b1}, {"a/y/z", &b2}};
		veld_tree_change both[] = {{"a", NULL}, {"a/x", &b1}};
		git_oid mid = tree_of(r, ch1, 3, &t[0]), x;
		t[1] = tree_of(r, ch2, 2, &mid);
		assert_int_equal(veld_repo__tree_update(&x, r, &t[0], both, 2, &err), VELD_ERROR);
	}
	{
		veld_tree_change ch[] = {{"a/y/z", NULL}, {"a0", NULL}, {"d/e/h", &b3}, {"zz/top", &b2}};
		t[2] = tree_of(r, ch, 4, &t[1]);
	}
	{
		veld_tree_change ch1[] = {{"a/x", NULL}, {"d/g", &b3}};
		veld_tree_change ch2[] = {{"a", &b2}};
		git_oid mid = tree_of(r, ch1, 2, &t[2]);
		t[3] = tree_of(r, ch2, 1, &mid);
	}
	{
		veld_tree_change ch[] = {{"only", &b1}};
		t[4] = tree_of(r, ch, 1, NULL);
	}
	for (i = 0; i < 5; i++)
		for (j = 0; j < 5; j++) {
			memset(&mine, 0, sizeof mine);
			assert_int_equal(veld_repo__diff(r, &t[i], &t[j], log_diff_cb, &mine, &err), 0);
			oracle_diff(&theirs, r, &t[i], &t[j]);
			assert_string_equal(mine.text, theirs.text);
		}
	for (i = 0; i < 5; i++) {
		memset(&mine, 0, sizeof mine);
		assert_int_equal(veld_repo__diff(r, NULL, &t[i], log_diff_cb, &mine, &err), 0);
		oracle_diff(&theirs, r, NULL, &t[i]);
		assert_string_equal(mine.text, theirs.text);
	}
	drop_repo(r, dir);
}

static void test_sync_repo__diff_reports_changed_paths(void **state)
{
	char *dir, expect[512], h1[8], h2[8], h3[8], h4[8], h5[8];
	veld_repo *r = new_repo(&dir, "repo-diff");
	veld_err err = {0};
	git_oid b1 = blob(r, "1"), b2 = blob(r, "2"), b3 = blob(r, "3"), b4 = blob(r, "4"), b5 = blob(r, "5"), t1, t2;
	diff_log log;
	(void)state;

	{
		veld_tree_change ch[] = {{"a/x", &b1}, {"a/y", &b2}, {"b/z", &b3}, {"d/same", &b5}};
		t1 = tree_of(r, ch, 4, NULL);
	}
	{
		veld_tree_change ch[] = {{"a/x", &b4}, {"b/z", NULL}, {"c/w", &b5}};
		t2 = tree_of(r, ch, 3, &t1);
	}
	git_oid_tostr(h1, 5, &b1);
	git_oid_tostr(h2, 5, &b2);
	git_oid_tostr(h3, 5, &b3);
	git_oid_tostr(h4, 5, &b4);
	git_oid_tostr(h5, 5, &b5);

	memset(&log, 0, sizeof log);
	assert_int_equal(veld_repo__diff(r, &t1, &t2, log_diff_cb, &log, &err), 0);
	snprintf(expect, sizeof expect, "a/x %s %s;b/z %s -;c/w - %s;", h1, h4, h3, h5);
	assert_string_equal(log.text, expect);

	/* From nothing: everything added, in path order. */
	memset(&log, 0, sizeof log);
	assert_int_equal(veld_repo__diff(r, NULL, &t1, log_diff_cb, &log, &err), 0);
	snprintf(expect, sizeof expect, "a/x - %s;a/y - %s;b/z - %s;d/same - %s;", h1, h2, h3, h5);
	assert_string_equal(log.text, expect);

	/* To nothing: everything deleted. */
	memset(&log, 0, sizeof log);
	assert_int_equal(veld_repo__diff(r, &t2, NULL, log_diff_cb, &log, &err), 0);
	assert_int_equal(log.calls, 4);

	/* Same tree: nothing. */
	memset(&log, 0, sizeof log);
	assert_int_equal(veld_repo__diff(r, &t1, &t1, log_diff_cb, &log, &err), 0);
	assert_int_equal(log.calls, 0);

	/* A callback's non-zero return stops the walk and is returned. */
	memset(&log, 0, sizeof log);
	log.stop_after = 1;
	assert_int_equal(veld_repo__diff(r, &t1, &t2, log_diff_cb, &log, &err), 7);
	assert_int_equal(log.calls, 1);

	/* A record moved to another path is a delete and an add (no renames). */
	{
		veld_tree_change ch[] = {{"a/x", NULL}, {"e/x", &b1}};
		git_oid t3 = tree_of(r, ch, 2, &t1);
		memset(&log, 0, sizeof log);
		assert_int_equal(veld_repo__diff(r, &t1, &t3, log_diff_cb, &log, &err), 0);
		snprintf(expect, sizeof expect, "a/x %s -;e/x - %s;", h1, h1);
		assert_string_equal(log.text, expect);
	}
	drop_repo(r, dir);
}

/* ---- refs --------------------------------------------------------------- */

typedef struct ref_log {
	char text[1024];
} ref_log;

static int log_ref_cb(const char *name, const git_oid *id, void *payload)
{
	ref_log *l = payload;
	size_t len = strlen(l->text);
	(void)id;
	snprintf(l->text + len, sizeof l->text - len, "%s;", name);
	return 0;
}

static void test_sync_repo__refs(void **state)
{
	char *dir;
	veld_repo *r = new_repo(&dir, "repo-refs");
	veld_err err = {0};
	keypair k;
	git_oid a, b, got;
	ref_log log;
	(void)state;

	crypto_sign_keypair(k.pk, k.sk);
	a = commit_file(r, NULL, "f", "a", &k);
	b = commit_file(r, &a, "f", "b", &k);
	assert_int_equal(veld_repo__ref_get(&got, r, "refs/heads/main", &err), VELD_ENOTFOUND);
	assert_int_equal(veld_repo__ref_set(r, "refs/veld/devices/" DEV2, &a, &err), 0);
	assert_int_equal(veld_repo__ref_set(r, "refs/veld/devices/" DEV1, &a, &err), 0);
	assert_int_equal(veld_repo__ref_set(r, "refs/veld-keys/" DEV1, &a, &err), 0);
	assert_int_equal(veld_repo__ref_set(r, "refs/heads/main", &b, &err), 0);
	/* Forced: a ref may move anywhere (keys refs are replaced). */
	assert_int_equal(veld_repo__ref_set(r, "refs/veld/devices/" DEV1, &b, &err), 0);
	assert_int_equal(veld_repo__ref_set(r, "refs/veld/devices/" DEV1, &a, &err), 0);
	assert_int_equal(veld_repo__ref_get(&got, r, "refs/veld/devices/" DEV1, &err), 0);
	assert_true(git_oid_equal(&got, &a));
	assert_int_equal(veld_repo__ref_get(&got, r, "refs/heads/main", &err), 0);
	assert_true(git_oid_equal(&got, &b));
	assert_int_equal(veld_repo__ref_set(r, "refs/bad..name", &a, &err), VELD_EINVALID);

	memset(&log, 0, sizeof log);
	assert_int_equal(veld_repo__ref_list(r, "refs/veld/", log_ref_cb, &log, &err), 0);
	assert_string_equal(log.text, "refs/veld/devices/" DEV1 ";refs/veld/devices/" DEV2 ";");
	memset(&log, 0, sizeof log);
	assert_int_equal(veld_repo__ref_list(r, "refs/veld", log_ref_cb, &log, &err), 0);
	assert_string_equal(log.text, "refs/veld-keys/" DEV1 ";refs/veld/devices/" DEV1 ";refs/veld/devices/" DEV2 ";");
	memset(&log, 0, sizeof log);
	assert_int_equal(veld_repo__ref_list(r, "refs/nothing/", log_ref_cb, &log, &err), 0);
	assert_string_equal(log.text, "");
	sodium_memzero(&k, sizeof k);
	drop_repo(r, dir);
}

/* ---- fetch and push over paths ------------------------------------------ */

typedef struct progress_log {
	int calls;
	size_t last_total;
} progress_log;

static int progress_cb(const char *stage, size_t done, size_t total, void *payload)
{
	progress_log *p = payload;
	(void)stage;
	(void)done;
	p->calls++;
	p->last_total = total;
	return 0;
}

static void test_sync_repo__fetch_and_push_by_path(void **state)
{
	char *da, *db, *dh, url[4400];
	veld_repo *a = new_repo(&da, "repo-a"), *b = new_repo(&db, "repo-b"), *hub = new_repo(&dh, "repo-hub");
	veld_err err = {0};
	keypair k;
	progress_log pl = {0, 0};
	veld_remote_opts opts = {NULL, progress_cb, &pl};
	git_oid c1, c2, got;
	const char *push_spec[] = {"refs/veld/devices/" DEV1 ":refs/veld/devices/" DEV1};
	const char *fetch_spec[] = {"+refs/veld/devices/*:refs/veld-hub/veld/devices/*",
	                            "+refs/veld-keys/*:refs/veld-hub/veld-keys/*"};
	(void)state;

	crypto_sign_keypair(k.pk, k.sk);
	c1 = commit_file(a, NULL, "cases/ab/c/r", "v1", &k);
	assert_int_equal(veld_repo__ref_set(a, "refs/veld/devices/" DEV1, &c1, &err), 0);
	assert_int_equal(veld_repo__push(a, dh, push_spec, 1, &opts, &err), 0);
	assert_int_equal(veld_repo__ref_get(&got, hub, "refs/veld/devices/" DEV1, &err), 0);
	assert_true(git_oid_equal(&got, &c1));

	/* Fetch through a file:// URL into refs/veld-hub/...; no tags, no FETCH_HEAD. */
	snprintf(url, sizeof url, "file://%s", dh);
	pl.calls = 0;
	assert_int_equal(veld_repo__fetch(b, url, fetch_spec, 2, &opts, &err), 0);
	assert_int_equal(veld_repo__ref_get(&got, b, "refs/veld-hub/veld/devices/" DEV1, &err), 0);
	assert_true(git_oid_equal(&got, &c1));
	assert_int_equal(veld_repo__ref_get(&got, b, "refs/veld/devices/" DEV1, &err), VELD_ENOTFOUND);
	assert_true(pl.calls > 0);
	{
		/* libgit2 1.5 creates FETCH_HEAD even with update_fetchhead = 0,
		** but writes nothing into it. */
		char *fh = veld_test_path(db, "FETCH_HEAD");
		size_t len = 0;
		unsigned char *bytes = veld_test_read_file(fh, &len);
		assert_int_equal(len, 0);
		free(bytes);
		free(fh);
	}

	/* A fast-forward push and the fetch that follows it. */
	c2 = commit_file(a, &c1, "cases/ab/c/r", "v2", &k);
	assert_int_equal(veld_repo__ref_set(a, "refs/veld/devices/" DEV1, &c2, &err), 0);
	pl.calls = 0;
	assert_int_equal(veld_repo__push(a, dh, push_spec, 1, &opts, &err), 0);
	assert_true(pl.calls > 0);
	assert_int_equal(veld_repo__fetch(b, dh, fetch_spec, 2, &opts, &err), 0);
	assert_int_equal(veld_repo__ref_get(&got, b, "refs/veld-hub/veld/devices/" DEV1, &err), 0);
	assert_true(git_oid_equal(&got, &c2));
	/* Pushing again is a no-op. */
	assert_int_equal(veld_repo__push(a, dh, push_spec, 1, NULL, &err), 0);

	/* Prune: a ref that disappears from the hub goes from our copy too. */
	assert_int_equal(veld_test_sh("git -C '%s' update-ref -d refs/veld/devices/%s", dh, DEV1), 0);
	assert_int_equal(veld_repo__fetch(b, dh, fetch_spec, 2, NULL, &err), 0);
	assert_int_equal(veld_repo__ref_get(&got, b, "refs/veld-hub/veld/devices/" DEV1, &err), VELD_ENOTFOUND);

	/* Fetching from nowhere. */
	assert_int_not_equal(veld_repo__fetch(b, "/nonexistent/veld-hub", fetch_spec, 1, NULL, &err), 0);
	assert_non_null(strstr(err.msg, "/nonexistent/veld-hub"));
	assert_int_equal(veld_test_sh("git -C '%s' fsck --strict >/dev/null 2>&1", db), 0);
	sodium_memzero(&k, sizeof k);
	drop_repo(a, da);
	drop_repo(b, db);
	drop_repo(hub, dh);
}

/* A progress callback that asks to stop. */
static int cancel_cb(const char *stage, size_t done, size_t total, void *payload)
{
	(void)stage;
	(void)done;
	(void)total;
	(void)payload;
	return 1;
}

static void test_sync_repo__progress_cancels_fetch_and_push(void **state)
{
	char *da, *db, *dh, url[4400];
	veld_repo *a = new_repo(&da, "repo-cancel-a"), *b = new_repo(&db, "repo-cancel-b"),
	          *hub = new_repo(&dh, "repo-cancel-hub");
	veld_err err = {0};
	keypair k;
	veld_remote_opts stop = {NULL, cancel_cb, NULL};
	git_oid c1, c2, got;
	const char *push_spec[] = {"refs/veld/devices/" DEV1 ":refs/veld/devices/" DEV1};
	const char *fetch_spec[] = {"+refs/veld/devices/*:refs/veld-hub/veld/devices/*"};
	(void)state;

	crypto_sign_keypair(k.pk, k.sk);
	c1 = commit_file(a, NULL, "cases/ab/c/r", "v1", &k);
	assert_int_equal(veld_repo__ref_set(a, "refs/veld/devices/" DEV1, &c1, &err), 0);

	/* A push to a path: canceled, the hub has no ref; then it goes. */
	assert_int_equal(veld_repo__push(a, dh, push_spec, 1, &stop, &err), VELD_ECANCELED);
	assert_non_null(strstr(err.msg, "canceled"));
	assert_int_equal(veld_repo__ref_get(&got, hub, "refs/veld/devices/" DEV1, &err), VELD_ENOTFOUND);
	assert_int_equal(veld_repo__push(a, dh, push_spec, 1, NULL, &err), 0);
	assert_int_equal(veld_repo__ref_get(&got, hub, "refs/veld/devices/" DEV1, &err), 0);
	assert_true(git_oid_equal(&got, &c1));

	/* A fetch from a path: canceled, no copy; then it comes. */
	assert_int_equal(veld_repo__fetch(b, dh, fetch_spec, 1, &stop, &err), VELD_ECANCELED);
	assert_int_equal(veld_repo__ref_get(&got, b, "refs/veld-hub/veld/devices/" DEV1, &err), VELD_ENOTFOUND);
	assert_int_equal(veld_repo__fetch(b, dh, fetch_spec, 1, NULL, &err), 0);
	assert_int_equal(veld_repo__ref_get(&got, b, "refs/veld-hub/veld/devices/" DEV1, &err), 0);
	assert_true(git_oid_equal(&got, &c1));

	/* Through libgit2's transport (file://): its GIT_EUSER is a cancel too,
	** and the copy stays where it was. */
	c2 = commit_file(a, &c1, "cases/ab/c/r", "v2", &k);
	assert_int_equal(veld_repo__ref_set(a, "refs/veld/devices/" DEV1, &c2, &err), 0);
	assert_int_equal(veld_repo__push(a, dh, push_spec, 1, NULL, &err), 0);
	snprintf(url, sizeof url, "file://%s", dh);
	assert_int_equal(veld_repo__fetch(b, url, fetch_spec, 1, &stop, &err), VELD_ECANCELED);
	assert_non_null(strstr(err.msg, "canceled"));
	assert_int_equal(veld_repo__ref_get(&got, b, "refs/veld-hub/veld/devices/" DEV1, &err), 0);
	assert_true(git_oid_equal(&got, &c1));
	assert_int_equal(veld_repo__fetch(b, url, fetch_spec, 1, NULL, &err), 0);
	assert_int_equal(veld_repo__ref_get(&got, b, "refs/veld-hub/veld/devices/" DEV1, &err), 0);
	assert_true(git_oid_equal(&got, &c2));

	sodium_memzero(&k, sizeof k);
	drop_repo(a, da);
	drop_repo(b, db);
	drop_repo(hub, dh);
}

/* Lines of `text` that name a file under `dir` and end in "(deleted)". */
static int count_removed(const char *text, const char *dir)
{
	const char *p;
	int n = 0;
	for (p = text; (p = strstr(p, dir)) != NULL; p++) {
		const char *eol = strchr(p, '\n');
		if (eol && eol - p >= 9 && !memcmp(eol - 9, "(deleted)", 9))
			n++;
	}
	return n;
}

/* Files under `dir` this process still holds (mapped or open) after they
** were removed: a repacked hub's old packs, kept alive by a stale handle. */
static int held_removed(const char *dir)
{
	char *maps = run_out("cat /proc/$PPID/maps"), *fds = run_out("ls -l /proc/$PPID/fd/");
	int n = count_removed(maps, dir) + count_removed(fds, dir);
	free(maps);
	free(fds);
	return n;
}

/* A hub on a path stays open with the repository handle between fetches
** and pushes, and is opened again once another handle repacked it: what
** arrived since is seen, and no removed pack stays held. */
static void test_sync_repo__kept_hub_follows_repacks(void **state)
{
	char *da, *db, *dh;
	veld_repo *a = new_repo(&da, "kept-a"), *b = new_repo(&db, "kept-b"), *hub = new_repo(&dh, "kept-hub");
	veld_err err = {0};
	keypair k;
	git_oid c1, c2, c3, got;
	const char *push_spec[] = {"refs/veld/devices/" DEV1 ":refs/veld/devices/" DEV1};
	const char *fetch_spec[] = {"+refs/veld/devices/*:refs/veld-hub/veld/devices/*"};
	(void)state;

	crypto_sign_keypair(k.pk, k.sk);
	c1 = commit_file(a, NULL, "cases/ab/c/r", "v1", &k);
	assert_int_equal(veld_repo__ref_set(a, "refs/veld/devices/" DEV1, &c1, &err), 0);
	assert_int_equal(veld_repo__push(a, dh, push_spec, 1, NULL, &err), 0);
	assert_int_equal(veld_repo__fetch(b, dh, fetch_spec, 1, NULL, &err), 0);
	c2 = commit_file(a, &c1, "cases/ab/c/r", "v2", &k);
	assert_int_equal(veld_repo__ref_set(a, "refs/veld/devices/" DEV1, &c2, &err), 0);
	assert_int_equal(veld_repo__push(a, dh, push_spec, 1, NULL, &err), 0);
	assert_int_equal(veld_repo__fetch(b, dh, fetch_spec, 1, NULL, &err), 0);
	assert_int_equal(veld_repo__ref_get(&got, b, "refs/veld-hub/veld/devices/" DEV1, &err), 0);
	assert_true(git_oid_equal(&got, &c2));
	assert_int_equal(count_packs(dh), 2);
	assert_int_equal(held_removed(dh), 0);

	/* Another handle repacks the hub: the kept handles of a and b now hold
	** its removed packs (what the check below must see go). */
	assert_int_equal(veld_repo__maintain(hub, 0, &err), 0);
	assert_int_equal(count_packs(dh), 1);
	assert_true(held_removed(dh) > 0);

	/* The next push and fetch open the hub again: the new head arrives,
	** built on objects that now live only in the repacked pack. */
	c3 = commit_file(a, &c2, "cases/ab/d/r", "v3", &k);
	assert_int_equal(veld_repo__ref_set(a, "refs/veld/devices/" DEV1, &c3, &err), 0);
	assert_int_equal(veld_repo__push(a, dh, push_spec, 1, NULL, &err), 0);
	assert_int_equal(veld_repo__fetch(b, dh, fetch_spec, 1, NULL, &err), 0);
	assert_int_equal(veld_repo__ref_get(&got, b, "refs/veld-hub/veld/devices/" DEV1, &err), 0);
	assert_true(git_oid_equal(&got, &c3));
	assert_int_equal(held_removed(dh), 0);
	assert_int_equal(veld_test_sh("git -C '%s' fsck --strict >/dev/null 2>&1", dh), 0);
	assert_int_equal(veld_test_sh("git -C '%s' fsck --strict >/dev/null 2>&1", db), 0);

	/* Released on request (before a repack through another handle). */
	veld_repo__hub_release(b);
	veld_repo__hub_release(b);
	assert_int_equal(veld_repo__fetch(b, dh, fetch_spec, 1, NULL, &err), 0);
	sodium_memzero(&k, sizeof k);
	drop_repo(a, da);
	drop_repo(b, db);
	drop_repo(hub, dh);
}

/* A hub on a path gets, and gives, what a change made and nothing else:
** changing one record of forty sends its blob, the trees on its path and
** the commit, however many cases there are; a merge of two heads the
** other side has sends the merge commit and the trees it changed. */
static void test_sync_repo__path_moves_what_changed(void **state)
{
	char *da, *db, *dh;
	veld_repo *a = new_repo(&da, "repo-pa"), *b = new_repo(&db, "repo-pb"), *hub = new_repo(&dh, "repo-ph");
	veld_err err = {0};
	keypair k;
	git_oid blobs[40], t1, t2, c1, c2, c3, got, b2;
	veld_tree_change ch[40];
	char paths[40][32];
	size_t i;
	const char *push_spec[] = {"refs/veld/devices/" DEV1 ":refs/veld/devices/" DEV1};
	const char *fetch_spec[] = {"+refs/veld/devices/*:refs/veld-hub/veld/devices/*"};
	(void)state;
	crypto_sign_keypair(k.pk, k.sk);
	for (i = 0; i < 40; i++) {
		char text[32];
		snprintf(paths[i], sizeof paths[i], "cases/%02zu/c%zu/r", i % 8, i);
		snprintf(text, sizeof text, "record %zu", i);
		blobs[i] = blob(a, text);
		ch[i].path = paths[i];
		ch[i].id = &blobs[i];
	}
	t1 = tree_of(a, ch, 40, NULL);
	c1 = commit(a, &t1, NULL, 0, DEV1, &k);
	assert_int_equal(veld_repo__ref_set(a, "refs/veld/devices/" DEV1, &c1, &err), 0);
	assert_int_equal(veld_repo__push(a, dh, push_spec, 1, NULL, &err), 0);
	/* 40 blobs, 40 case trees, 8 fan-out trees, cases/, the root, the commit */
	assert_int_equal(newest_pack_objects(dh), 91);
	assert_int_equal(veld_repo__fetch(b, dh, fetch_spec, 1, NULL, &err), 0);
	assert_int_equal(newest_pack_objects(db), 91);

	/* one record changes */
	b2 = blob(a, "record 5, changed");
	ch[0].path = paths[5];
	ch[0].id = &b2;
	t2 = tree_of(a, ch, 1, &t1);
	c2 = commit(a, &t2, &c1, 1, DEV1, &k);
	assert_int_equal(veld_repo__ref_set(a, "refs/veld/devices/" DEV1, &c2, &err), 0);
	sleep(1); /* ls -t: the new pack is the newest */
	assert_int_equal(veld_repo__push(a, dh, push_spec, 1, NULL, &err), 0);
	assert_int_equal(newest_pack_objects(dh), 6); /* blob, c5/, 05/, cases/, root, commit */
	assert_int_equal(veld_repo__fetch(b, dh, fetch_spec, 1, NULL, &err), 0);
	assert_int_equal(newest_pack_objects(db), 6);
	assert_int_equal(veld_repo__ref_get(&got, b, "refs/veld-hub/veld/devices/" DEV1, &err), 0);
	assert_true(git_oid_equal(&got, &c2));
	{
		unsigned char *buf = NULL;
		size_t len = 0;
		assert_int_equal(veld_repo__blob_read(&buf, &len, b, &b2, &err), VELD_OK);
		assert_int_equal(len, strlen("record 5, changed"));
		free(buf);
	}

	/* a merge of c2 with a sibling of it, both known to the hub once c2 is:
	** only the merge commit and the trees it made go */
	{
		git_oid parents[2], t3, b3 = blob(a, "record 9, changed"), side;
		veld_tree_change one = {paths[9], &b3};
		git_oid ts = tree_of(a, &one, 1, &t1);
		side = commit(a, &ts, &c1, 1, DEV1, &k);
		assert_int_equal(veld_repo__ref_set(a, "refs/veld/devices/" DEV1, &side, &err), 0);
		assert_int_equal(veld_repo__ref_set(a, "refs/veld/devices/" DEV2, &c2, &err), 0);
		{
			const char *force[] = {"+refs/veld/devices/" DEV1 ":refs/veld/devices/" DEV1};
			sleep(1);
			assert_int_equal(veld_repo__push(a, dh, force, 1, NULL, &err), 0);
			assert_int_equal(newest_pack_objects(dh), 6); /* blob, c9/, 01/, cases/, root, commit */
		}
		t3 = tree_of(a, &one, 1, &t2);
		parents[0] = side;
		parents[1] = c2;
		c3 = commit(a, &t3, parents, 2, DEV1, &k);
		assert_int_equal(veld_repo__ref_set(a, "refs/veld/devices/" DEV1, &c3, &err), 0);
		sleep(1);
		assert_int_equal(veld_repo__push(a, dh, push_spec, 1, NULL, &err), 0);
		/* the merge: its commit, the root and cases/ (no parent has them as
		** they are now); 01/ is the side's, 05/ is c2's */
		assert_int_equal(newest_pack_objects(dh), 3);
	}
	assert_int_equal(veld_test_sh("git -C '%s' fsck --strict >/dev/null 2>&1", dh), 0);
	assert_int_equal(veld_test_sh("git -C '%s' fsck --strict >/dev/null 2>&1", db), 0);
	sodium_memzero(&k, sizeof k);
	drop_repo(a, da);
	drop_repo(b, db);
	drop_repo(hub, dh);
}

/* What a refused push looks like on a path remote.  libgit2's local
** transport runs no hooks (an `update` hook that refuses everything is
** ignored); it refuses a non-fast-forward before sending anything
** (GIT_ENONFASTFORWARD), and the refdb's own refusals (a locked ref) come
** back through push_update_reference while git_remote_push returns 0. */
static void test_sync_repo__push_refusals_by_path(void **state)
{
	char *da, *db, *dh, *hook, *lock;
	veld_repo *a = new_repo(&da, "repo-a"), *b = new_repo(&db, "repo-b"), *hub = new_repo(&dh, "repo-hub");
	veld_err err = {0};
	keypair k;
	git_oid c1, c2, x, got;
	const char *spec[] = {"refs/veld/devices/" DEV1 ":refs/veld/devices/" DEV1};
	const char *force[] = {"+refs/veld/devices/" DEV1 ":refs/veld/devices/" DEV1};
	const char *fetch_spec[] = {"+refs/veld/devices/*:refs/veld/devices/*"};
	const char *two[] = {"refs/veld/devices/" DEV1 ":refs/veld/devices/" DEV1,
	                     "refs/veld/devices/" DEV2 ":refs/veld/devices/" DEV2};
	int rc;
	(void)state;

	crypto_sign_keypair(k.pk, k.sk);

	/* An update hook that refuses everything: git's own push obeys it ... */
	hook = veld_test_path(dh, "hooks/update");
	assert_int_equal(veld_test_write_file(hook, "#!/bin/sh\necho \"hook refuses $1\" >&2\nexit 1\n", 45), 0);
	assert_int_equal(chmod(hook, 0755), 0);
	c1 = commit_file(a, NULL, "cases/ab/c/r", "v1", &k);
	assert_int_equal(veld_repo__ref_set(a, "refs/veld/devices/" DEV1, &c1, &err), 0);
	assert_int_not_equal(veld_test_sh("git -C '%s' push -q '%s' refs/veld/devices/%s >/dev/null 2>&1", da, dh, DEV1), 0);
	assert_int_equal(veld_repo__ref_get(&got, hub, "refs/veld/devices/" DEV1, &err), VELD_ENOTFOUND);
	/* ... libgit2's local transport does not run it. */
	assert_int_equal(veld_repo__push(a, dh, spec, 1, NULL, &err), 0);
	assert_int_equal(veld_repo__ref_get(&got, hub, "refs/veld/devices/" DEV1, &err), 0);
	assert_true(git_oid_equal(&got, &c1));
	unlink(hook);

	/* Non-fast-forward without force: refused, ref named, hub unchanged. */
	assert_int_equal(veld_repo__fetch(b, dh, fetch_spec, 1, NULL, &err), 0);
	c2 = commit_file(a, &c1, "cases/ab/c/r", "v2", &k);
	assert_int_equal(veld_repo__ref_set(a, "refs/veld/devices/" DEV1, &c2, &err), 0);
	assert_int_equal(veld_repo__push(a, dh, spec, 1, NULL, &err), 0);
	x = commit_file(b, &c1, "cases/ab/c/r", "diverged", &k);
	assert_int_equal(veld_repo__ref_set(b, "refs/veld/devices/" DEV1, &x, &err), 0);
	rc = veld_repo__push(b, dh, spec, 1, NULL, &err);
	assert_int_equal(rc, VELD_EDENIED);
	assert_null(strstr(err.msg, "by the server")); /* libgit2's own check */
	assert_non_null(strstr(err.msg, "refs/veld/devices/" DEV1));
	assert_non_null(strstr(err.msg, dh));
	assert_int_equal(veld_repo__ref_get(&got, hub, "refs/veld/devices/" DEV1, &err), 0);
	assert_true(git_oid_equal(&got, &c2));
	/* With force it goes through (keys refs are replaced this way). */
	assert_int_equal(veld_repo__push(b, dh, force, 1, NULL, &err), 0);
	assert_int_equal(veld_repo__ref_get(&got, hub, "refs/veld/devices/" DEV1, &err), 0);
	assert_true(git_oid_equal(&got, &x));

	/* A ref locked in the hub (another process's update, or a killed one's
	** left behind): not a refusal but a failure to retry, VELD_ERROR naming
	** the ref; a lock this young is left alone. */
	assert_int_equal(veld_repo__fetch(a, dh, fetch_spec, 1, NULL, &err), 0); /* a now has x */
	assert_int_equal(veld_repo__ref_set(a, "refs/veld/devices/" DEV2, &c1, &err), 0);
	lock = veld_test_path(dh, "refs/veld/devices/" DEV2 ".lock");
	assert_int_equal(veld_test_write_file(lock, "", 0), 0);
	rc = veld_repo__push(a, dh, two, 2, NULL, &err);
	assert_int_equal(rc, VELD_ERROR);
	assert_non_null(strstr(err.msg, "refs/veld/devices/" DEV2));
	assert_non_null(strstr(err.msg, "is locked"));
	assert_non_null(strstr(err.msg, "lock"));
	assert_int_equal(access(lock, F_OK), 0);
	assert_int_equal(veld_repo__ref_get(&got, hub, "refs/veld/devices/" DEV2, &err), VELD_ENOTFOUND);
	unlink(lock);
	assert_int_equal(veld_repo__push(a, dh, two, 2, NULL, &err), 0);
	assert_int_equal(veld_repo__ref_get(&got, hub, "refs/veld/devices/" DEV2, &err), 0);
	assert_true(git_oid_equal(&got, &c1));

	free(lock);
	free(hook);
	sodium_memzero(&k, sizeof k);
	drop_repo(a, da);
	drop_repo(b, db);
	drop_repo(hub, dh);
}

/* ---- credentials: a server that always answers 401 ---------------------- */

typedef struct cred_log {
	int calls;
	char url[512];
} cred_log;

static int cred_cb(char *user, size_t ucap, char *pass, size_t pcap, const char *url, void *payload)
{
	cred_log *l = payload;
	l->calls++;
	snprintf(l->url, sizeof l->url, "%s", url);
	snprintf(user, ucap, "%s", DEV1);
	snprintf(pass, pcap, "%s", "wrong password");
	return 0;
}

/* Fork a server on 127.0.0.1 that answers every request with 401 (up to
** 64 connections); returns its pid and port. */
static pid_t start_401_server(int *port)
{
	struct sockaddr_in sa;
	socklen_t sl = sizeof sa;
	int s = socket(AF_INET, SOCK_STREAM, 0), one = 1;
	pid_t pid;
	assert_true(s >= 0);
	setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	memset(&sa, 0, sizeof sa);
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(s, (struct sockaddr *)&sa, sizeof sa), 0);
	assert_int_equal(listen(s, 16), 0);
	assert_int_equal(getsockname(s, (struct sockaddr *)&sa, &sl), 0);
	*port = ntohs(sa.sin_port);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		static const char resp[] = "HTTP/1.1 401 Unauthorized\r\n"
		                           "WWW-Authenticate: Basic realm=\"veld\"\r\n"
		                           "Content-Length: 0\r\nConnection: close\r\n\r\n";
		int i;
		for (i = 0; i < 64; i++) {
			char buf[4096];
			int c = accept(s, NULL, NULL);
			ssize_t got;
			if (c < 0)
				_exit(1);
			got = read(c, buf, sizeof buf); /* the request head; its content is irrelevant */
			(void)got;
			if (write(c, resp, sizeof resp - 1) < 0)
				_exit(1);
			close(c);
		}
		_exit(0);
	}
	close(s);
	return pid;
}

static void test_sync_repo__auth_failure_gives_up(void **state)
{
	char *dir, url[128];
	veld_repo *r = new_repo(&dir, "repo-auth");
	veld_err err = {0};
	cred_log cl;
	veld_remote_opts opts = {cred_cb, NULL, &cl};
	const char *spec[] = {"+refs/veld/devices/*:refs/veld-hub/veld/devices/*"};
	int port, rc, st;
	pid_t pid = start_401_server(&port);
	(void)state;

	memset(&cl, 0, sizeof cl);
	snprintf(url, sizeof url, "http://127.0.0.1:%d/veld.git", port);
	rc = veld_repo__fetch(r, url, spec, 1, &opts, &err);
	assert_int_equal(rc, VELD_EAUTH);
	assert_int_equal(cl.calls, 1);
	assert_string_equal(cl.url, url);
	assert_non_null(strstr(err.msg, "authentication failed for"));
	assert_non_null(strstr(err.msg, url));

	/* Credentials in the URL never reach a message. */
	memset(&cl, 0, sizeof cl);
	snprintf(url, sizeof url, "http://" DEV1 ":hunter2@127.0.0.1:%d/veld.git", port);
	rc = veld_repo__push(r, url, spec, 1, &opts, &err);
	assert_int_equal(rc, VELD_EAUTH);
	assert_null(strstr(err.msg, "hunter2"));
	assert_non_null(strstr(err.msg, "127.0.0.1"));

	/* No credential callback at all. */
	snprintf(url, sizeof url, "http://127.0.0.1:%d/veld.git", port);
	rc = veld_repo__fetch(r, url, spec, 1, NULL, &err);
	assert_int_equal(rc, VELD_EAUTH);

	kill(pid, SIGTERM);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	drop_repo(r, dir);
}

/* ---- the smart-HTTP hub (tools/hub), when it can run here --------------- */

static char g_src[4096];
static char g_hubdir[4200];

static const char *src_dir(void)
{
	if (!g_src[0]) {
		/* tests/unit/sync_repo.c -> the source tree */
		char *p;
		snprintf(g_src, sizeof g_src, "%s", __FILE__);
		for (int i = 0; i < 3 && (p = strrchr(g_src, '/')); i++)
			*p = '\0';
	}
	return g_src;
}

typedef struct pw_payload {
	const char *user;
	const char *pass;
	int calls;
} pw_payload;

static int pw_cb(char *user, size_t ucap, char *pass, size_t pcap, const char *url, void *payload)
{
	pw_payload *p = payload;
	(void)url;
	p->calls++;
	snprintf(user, ucap, "%s", p->user);
	snprintf(pass, pcap, "%s", p->pass);
	return 0;
}

static int hub_teardown(void **state)
{
	(void)state;
	if (g_hubdir[0]) {
		veld_test_sh("'%s/tools/hub' stop '%s' >/dev/null 2>&1", src_dir(), g_hubdir);
		veld_test_rmtree(g_hubdir);
		g_hubdir[0] = '\0';
	}
	return 0;
}

static void test_sync_repo__push_refusal_over_http(void **state)
{
	char *tmp, *dir, cmd[8800], *url;
	veld_repo *r;
	veld_err err = {0};
	keypair k;
	git_oid c1, c2, x;
	pw_payload pw = {DEV1, "pw-" DEV1, 0};
	veld_remote_opts opts = {pw_cb, NULL, &pw};
	const char *mine[] = {"refs/veld/devices/" DEV1 ":refs/veld/devices/" DEV1};
	const char *theirs[] = {"refs/veld/devices/" DEV1 ":refs/veld/devices/" DEV2};
	const char *force[] = {"+refs/veld/devices/" DEV1 ":refs/veld/devices/" DEV1};
	const char *fetch_spec[] = {"+refs/veld/devices/*:refs/veld-hub/veld/devices/*"};
	int rc;
	(void)state;

	if (veld_test_sh("command -v lighttpd >/dev/null 2>&1 || test -x /usr/sbin/lighttpd") != 0 ||
	    veld_test_sh("test -x '%s/tools/hub'", src_dir()) != 0) {
		print_message("lighttpd or tools/hub missing: HTTP push test skipped\n");
		skip();
	}
	tmp = veld_test_tmpdir("repo-http");
	snprintf(g_hubdir, sizeof g_hubdir, "%s", tmp);
	snprintf(cmd, sizeof cmd,
	         "H='%s/tools/hub' D='%s/hub' && \"$H\" init \"$D\" --office office >/dev/null && "
	         "VELD_HUB_PASSWORD=pw-%s \"$H\" adduser \"$D\" %s >/dev/null && "
	         "VELD_HUB_PASSWORD=pw-%s \"$H\" adduser \"$D\" %s >/dev/null && \"$H\" start \"$D\"",
	         src_dir(), tmp, DEV1, DEV1, DEV2, DEV2);
	snprintf(g_hubdir, sizeof g_hubdir, "%s/hub", tmp);
	url = run_out(cmd);
	url[strcspn(url, "\n")] = '\0';
	if (strncmp(url, "http://", 7) != 0) {
		free(url);
		free(tmp);
		fail_msg("tools/hub did not start");
	}

	r = new_repo(&dir, "repo-http-dev");
	crypto_sign_keypair(k.pk, k.sk);
	c1 = commit_file(r, NULL, "cases/ab/c/r", "v1", &k);
	assert_int_equal(veld_repo__ref_set(r, "refs/veld/devices/" DEV1, &c1, &err), 0);
	rc = veld_repo__push(r, url, mine, 1, &opts, &err);
	if (rc)
		fail_msg("push over HTTP: %s", err.msg);
	assert_int_equal(pw.calls, 1);

	/* The hub's update hook refuses: receive-pack reports "ng <ref> hook
	** declined", and the hook's reason comes as a message of the hub's. */
	rc = veld_repo__push(r, url, theirs, 1, &opts, &err);
	assert_int_equal(rc, VELD_EDENIED);
	assert_non_null(strstr(err.msg, "refs/veld/devices/" DEV2));
	assert_non_null(strstr(err.msg, "refused by the server: hook declined"));
	/* The hook's own reason, from the server's messages. */
	assert_non_null(strstr(err.msg, "only device " DEV2 " may update this ref"));

	/* A forced non-fast-forward is sent, and refused by the hook. */
	c2 = commit_file(r, &c1, "cases/ab/c/r", "v2", &k);
	assert_int_equal(veld_repo__ref_set(r, "refs/veld/devices/" DEV1, &c2, &err), 0);
	assert_int_equal(veld_repo__push(r, url, mine, 1, &opts, &err), 0);
	x = commit_file(r, &c1, "cases/ab/c/r", "rewritten", &k);
	assert_int_equal(veld_repo__ref_set(r, "refs/veld/devices/" DEV1, &x, &err), 0);
	rc = veld_repo__push(r, url, force, 1, &opts, &err);
	assert_int_equal(rc, VELD_EDENIED);
	assert_non_null(strstr(err.msg, "refs/veld/devices/" DEV1));
	assert_non_null(strstr(err.msg, "refused by the server"));
	assert_non_null(strstr(err.msg, "non-fast-forward update refused"));
	/* And without force it is refused before anything is sent. */
	rc = veld_repo__push(r, url, mine, 1, &opts, &err);
	assert_int_equal(rc, VELD_EDENIED);
	assert_non_null(strstr(err.msg, "refs/veld/devices/" DEV1));
	assert_null(strstr(err.msg, "by the server"));

	/* Fetch over HTTP brings what the hub holds. */
	assert_int_equal(veld_repo__fetch(r, url, fetch_spec, 1, &opts, &err), 0);
	{
		git_oid got;
		assert_int_equal(veld_repo__ref_get(&got, r, "refs/veld-hub/veld/devices/" DEV1, &err), 0);
		assert_true(git_oid_equal(&got, &c2));
	}

	/* A push whose progress callback cancels sends nothing: the hub keeps
	** its value; then the push goes through.  (A canceled fetch is tested
	** over file://: here the one repository already has what it would get.) */
	{
		veld_remote_opts stop = {pw_cb, cancel_cb, &pw};
		git_oid y, got;
		y = commit_file(r, &c2, "cases/ab/c/r", "v2b", &k);
		assert_int_equal(veld_repo__ref_set(r, "refs/veld/devices/" DEV1, &y, &err), 0);
		assert_int_equal(veld_repo__push(r, url, mine, 1, &stop, &err), VELD_ECANCELED);
		assert_int_equal(veld_repo__fetch(r, url, fetch_spec, 1, &opts, &err), 0);
		assert_int_equal(veld_repo__ref_get(&got, r, "refs/veld-hub/veld/devices/" DEV1, &err), 0);
		assert_true(git_oid_equal(&got, &c2));
		assert_int_equal(veld_repo__push(r, url, mine, 1, &opts, &err), 0);
		assert_int_equal(veld_repo__fetch(r, url, fetch_spec, 1, &opts, &err), 0);
		assert_int_equal(veld_repo__ref_get(&got, r, "refs/veld-hub/veld/devices/" DEV1, &err), 0);
		assert_true(git_oid_equal(&got, &y));
	}

	/* A wrong password: asked once, then a clear error. */
	pw.pass = "wrong";
	pw.calls = 0;
	rc = veld_repo__fetch(r, url, fetch_spec, 1, &opts, &err);
	assert_int_equal(rc, VELD_EAUTH);
	assert_int_equal(pw.calls, 1);
	pw.calls = 0;
	c2 = commit_file(r, &x, "cases/ab/c/r", "v3", &k);
	assert_int_equal(veld_repo__ref_set(r, "refs/veld/devices/" DEV1, &c2, &err), 0);
	rc = veld_repo__push(r, url, force, 1, &opts, &err);
	assert_int_equal(rc, VELD_EAUTH);
	assert_int_equal(pw.calls, 1);
	assert_null(strstr(err.msg, "wrong")); /* no password in a message */

	free(url);
	sodium_memzero(&k, sizeof k);
	drop_repo(r, dir);
	hub_teardown(NULL);
	veld_test_rmtree(tmp);
	free(tmp);
}

/* ---- maintenance -------------------------------------------------------- */

static int refs_resolve_cb(const char *name, const git_oid *id, void *payload)
{
	veld_repo *r = payload;
	git_object *o = NULL;
	(void)name;
	assert_int_equal(git_object_lookup(&o, veld_repo__git(r), id, GIT_OBJECT_ANY), 0);
	git_object_free(o);
	return 0;
}

static int odb_has(const char *dir, const git_oid *id)
{
	char hex[GIT_OID_HEXSZ + 1];
	return veld_test_sh("git -C '%s' cat-file -e %s 2>/dev/null", dir, git_oid_tostr(hex, sizeof hex, id)) == 0;
}

static void test_sync_repo__maintain_packs_and_prunes(void **state)
{
	char *dir, *out, cmd[4400];
	veld_repo *r = new_repo(&dir, "repo-gc");
	veld_err err = {0};
	keypair k;
	git_oid head, ka, kb, ka_tree, ka_blob, kb_blob, stray;
	git_odb *odb = NULL;
	int i, reachable, packed;
	(void)state;

	crypto_sign_keypair(k.pk, k.sk);
	head = commit_file(r, NULL, "cases/00/c/r", "v0", &k);
	for (i = 1; i < 40; i++) {
		char path[64], text[32];
		snprintf(path, sizeof path, "cases/%02x/c%d/r", i % 7, i);
		snprintf(text, sizeof text, "v%d", i);
		head = commit_file(r, &head, path, text, &k);
	}
	assert_int_equal(veld_repo__ref_set(r, "refs/veld/devices/" DEV1, &head, &err), 0);

	/* A history-less keys ref: root commit A, then replaced by root commit B. */
	ka_blob = blob(r, "sealed key for an erased case");
	{
		veld_tree_change ch = {DEV2 "/key-a", &ka_blob};
		ka_tree = tree_of(r, &ch, 1, NULL);
		ka = commit(r, &ka_tree, NULL, 0, DEV1, &k);
	}
	assert_int_equal(veld_repo__ref_set(r, "refs/veld-keys/" DEV1, &ka, &err), 0);
	kb_blob = blob(r, "sealed key that stays");
	{
		veld_tree_change ch = {DEV2 "/key-b", &kb_blob};
		git_oid t = tree_of(r, &ch, 1, NULL);
		kb = commit(r, &t, NULL, 0, DEV1, &k);
	}
	assert_int_equal(veld_repo__ref_set(r, "refs/veld-keys/" DEV1, &kb, &err), 0);
	assert_true(odb_has(dir, &ka));
	assert_int_equal(count_loose(dir), 0); /* each ref_set wrote a pack */
	assert_int_equal(count_packs(dir), 3);

	/* Fresh unreachable objects survive a prune with an age limit: their
	** packs are young, and kept whole beside the new one (the replaced keys
	** commit's, the stray's). */
	stray = blob(r, "unreachable and young");
	assert_int_equal(veld_repo__maintain(r, 3600, &err), 0);
	assert_true(odb_has(dir, &stray));
	assert_true(odb_has(dir, &ka));
	assert_int_equal(count_packs(dir), 3);
	/* ... and with pruning off (negative age). */
	assert_int_equal(veld_repo__maintain(r, -1, &err), 0);
	assert_true(odb_has(dir, &stray));

	/* Prune everything unreachable. */
	assert_int_equal(veld_repo__maintain(r, 0, &err), 0);
	assert_int_equal(count_loose(dir), 0);
	assert_int_equal(count_packs(dir), 1);
	assert_false(odb_has(dir, &ka));
	assert_false(odb_has(dir, &ka_tree));
	assert_false(odb_has(dir, &ka_blob));
	assert_false(odb_has(dir, &stray));
	assert_true(odb_has(dir, &kb));
	assert_true(odb_has(dir, &kb_blob));
	/* The handle sees the same (maintain reopened the repository). */
	assert_int_equal(git_repository_odb(&odb, veld_repo__git(r)), 0);
	assert_false(git_odb_exists(odb, &ka_blob));
	assert_true(git_odb_exists(odb, &kb_blob));
	git_odb_free(odb);

	/* Every ref still resolves; git agrees on the whole repository. */
	assert_int_equal(veld_repo__ref_list(r, "refs/", refs_resolve_cb, r, &err), 0);
	assert_int_equal(veld_test_sh("git -C '%s' fsck --strict --no-dangling >/dev/null 2>&1", dir), 0);
	/* The pack holds exactly what the refs reach (insert_walk covers trees and blobs). */
	snprintf(cmd, sizeof cmd, "git -C '%s' rev-list --objects --all | wc -l", dir);
	out = run_out(cmd);
	reachable = atoi(out);
	free(out);
	snprintf(cmd, sizeof cmd, "git -C '%s' count-objects -v | sed -n 's/^in-pack: //p'", dir);
	out = run_out(cmd);
	packed = atoi(out);
	free(out);
	assert_true(reachable > 120);
	assert_int_equal(packed, reachable);

	/* Again: nothing changes, still one pack, still sound. */
	assert_int_equal(veld_repo__maintain(r, 0, &err), 0);
	assert_int_equal(count_packs(dir), 1);
	assert_int_equal(count_loose(dir), 0);
	/* New work after a repack lands in a pack of its own (written when a
	** ref names it) and is packed with the rest by the next one. */
	head = commit_file(r, &head, "cases/01/new/r", "after", &k);
	assert_int_equal(veld_repo__ref_set(r, "refs/veld/devices/" DEV1, &head, &err), 0);
	assert_int_equal(count_loose(dir), 0);
	assert_int_equal(count_packs(dir), 2);
	assert_int_equal(veld_repo__maintain(r, 0, &err), 0);
	assert_int_equal(count_loose(dir), 0);
	assert_int_equal(count_packs(dir), 1);
	assert_int_equal(veld_test_sh("git -C '%s' fsck --strict --no-dangling >/dev/null 2>&1", dir), 0);
	{
		char signer[65];
		keytab tab = {{DEV1, NULL}, {k.pk, NULL}};
		assert_int_equal(veld_repo__commit_verify(signer, sizeof signer, r, &head, pubkey_cb, &tab, &err), 0);
	}
	sodium_memzero(&k, sizeof k);
	drop_repo(r, dir);
}

/* A repository with packs written by git itself and no refs at all. */
static void test_sync_repo__maintain_empty_and_foreign_packs(void **state)
{
	char *dir;
	veld_repo *r = new_repo(&dir, "repo-gc2");
	veld_err err = {0};
	git_oid b;
	(void)state;

	/* Nothing at all. */
	assert_int_equal(veld_repo__maintain(r, 0, &err), 0);
	/* Only unreachable objects, one of them packed by git. */
	b = blob(r, "packed by git, unreachable");
	assert_int_equal(veld_test_sh("cd '%s' && git repack -q -a -d --unpack-unreachable=never >/dev/null 2>&1 || "
	                        "git -C '%s' pack-objects -q objects/pack/pack </dev/null >/dev/null",
	                        dir, dir),
	                 0);
	(void)blob(r, "loose, unreachable");
	assert_int_equal(veld_repo__maintain(r, 0, &err), 0);
	assert_int_equal(count_loose(dir), 0);
	assert_false(odb_has(dir, &b));
	assert_int_equal(veld_test_sh("git -C '%s' fsck --strict >/dev/null 2>&1", dir), 0);
	drop_repo(r, dir);
}

/* The layer's own file operations go through the handle's OS table: a
** listing that the table fails fails maintain before it changes anything;
** the next run lists, removes and finishes the job through the table. */
static void test_sync_repo__maintain_goes_through_the_os_table(void **state)
{
	char *dir = veld_test_tmpdir("repo-gc-os");
	veld_os_faulty *f = NULL;
	veld_os_fault_plan plan;
	veld_repo *r = NULL;
	veld_err err = {0};
	keypair k;
	git_oid c1, c2;
	(void)state;

	assert_int_equal(veld_os_faulty_new(&f, veld_os_default()), 0);
	assert_int_equal(veld_repo__init(&r, veld_os_faulty_table(f), dir, &err), 0);
	crypto_sign_keypair(k.pk, k.sk);
	c1 = commit_file(r, NULL, "cases/ab/c/r", "v1", &k);
	assert_int_equal(veld_repo__ref_set(r, "refs/veld/devices/" DEV1, &c1, &err), 0);
	c2 = commit_file(r, &c1, "cases/ab/c/r", "v2", &k);
	assert_int_equal(veld_repo__ref_set(r, "refs/veld/devices/" DEV1, &c2, &err), 0);
	assert_int_equal(count_packs(dir), 2);

	memset(&plan, 0, sizeof plan);
	plan.version = 2;
	plan.fail_list_at = veld_os_faulty_count(f, 'l') + 1;
	veld_os_faulty_set(f, &plan);
	assert_int_equal(veld_repo__maintain(r, 0, &err), VELD_ERROR);
	assert_non_null(strstr(err.msg, "cannot read"));
	assert_int_equal(count_packs(dir), 2);
	assert_int_equal(veld_test_sh("git -C '%s' fsck --strict >/dev/null 2>&1", dir), 0);

	plan.fail_list_at = 0;
	veld_os_faulty_set(f, &plan);
	assert_int_equal(veld_repo__maintain(r, 0, &err), 0);
	assert_int_equal(count_packs(dir), 1);
	assert_true(veld_os_faulty_count(f, 'l') > 256); /* every fan-out directory, through the table */
	assert_true(veld_os_faulty_count(f, 'd') > 256); /* its rmdirs and the old packs' unlinks */
	assert_int_equal(veld_test_sh("git -C '%s' fsck --strict >/dev/null 2>&1", dir), 0);
	veld_repo__free(r);
	veld_os_faulty_free(f);
	sodium_memzero(&k, sizeof k);
	veld_test_rmtree(dir);
	free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_sync_repo__init_open_errors),
	        cmocka_unit_test(test_sync_repo__blobs_and_corruption),
	        cmocka_unit_test(test_sync_repo__tree_nested_paths_and_pruning),
	        cmocka_unit_test(test_sync_repo__tree_update_cost_is_proportional),
	        cmocka_unit_test(test_sync_repo__commit_sign_verify_round_trip),
	        cmocka_unit_test(test_sync_repo__commit_verify_failures),
	        cmocka_unit_test(test_sync_repo__new_commits_order_and_stops),
	        cmocka_unit_test(test_sync_repo__diff_reports_changed_paths),
	        cmocka_unit_test(test_sync_repo__diff_matches_libgit2),
	        cmocka_unit_test(test_sync_repo__refs),
	        cmocka_unit_test(test_sync_repo__fetch_and_push_by_path),
	        cmocka_unit_test(test_sync_repo__progress_cancels_fetch_and_push),
	        cmocka_unit_test(test_sync_repo__path_moves_what_changed),
	        cmocka_unit_test(test_sync_repo__kept_hub_follows_repacks),
	        cmocka_unit_test(test_sync_repo__push_refusals_by_path),
	        cmocka_unit_test(test_sync_repo__auth_failure_gives_up),
	        cmocka_unit_test_teardown(test_sync_repo__push_refusal_over_http, hub_teardown),
	        cmocka_unit_test(test_sync_repo__maintain_packs_and_prunes),
	        cmocka_unit_test(test_sync_repo__maintain_empty_and_foreign_packs),
	        cmocka_unit_test(test_sync_repo__maintain_goes_through_the_os_table),
	};
	int rc;
	if (sodium_init() < 0)
		return 1;
	/* Hold libgit2 for the whole run (the tests call it directly too); the
	** handles' own init/shutdown pairs nest inside. */
	git_libgit2_init();
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	git_libgit2_shutdown();
	return rc;
}
