/*
** tests/unit/sync_pack.c — the thin pack a push over HTTP sends
** (sync/pack.c), checked by git itself: every pack is taken the ways
** receive-pack takes one (`git index-pack --fix-thin`, `git
** unpack-objects`) into a repository that holds only the bases, and the
** objects must then be there under their own ids (a wrong delta gives
** other bytes, so another id).  Random trees exercise git's tree order
** (names that are prefixes of others, a tree and a blob of one name); a
** one-entry change of a large tree must travel as a small delta, and the
** repository that took the pack passes `git fsck --strict`.  A pack
** written to disk stores its objects; one for the wire deflates them.
*/
#include "testutil.h"

#include "sync.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct two_repos {
	char *dir, *src_path, *dst_path, *pack_path;
	git_repository *src, *dst;
} two_repos;

static void repos_up(two_repos *t, const char *tag)
{
	memset(t, 0, sizeof *t);
	t->dir = veld_test_tmpdir(tag);
	t->src_path = veld_test_path(t->dir, "src.git");
	t->dst_path = veld_test_path(t->dir, "dst.git");
	t->pack_path = veld_test_path(t->dir, "thin.pack");
	assert_int_equal(git_repository_init(&t->src, t->src_path, 1), 0);
	assert_int_equal(git_repository_init(&t->dst, t->dst_path, 1), 0);
}

static void repos_down(two_repos *t)
{
	git_repository_free(t->src);
	git_repository_free(t->dst);
	veld_test_rmtree(t->dir);
	free(t->dir);
	free(t->src_path);
	free(t->dst_path);
	free(t->pack_path);
}

/* Copy object `id` of src into dst as it is. */
static void copy_object(two_repos *t, const git_oid *id)
{
	git_odb *so, *d;
	git_odb_object *o;
	git_oid got;
	assert_int_equal(git_repository_odb(&so, t->src), 0);
	assert_int_equal(git_repository_odb(&d, t->dst), 0);
	assert_int_equal(git_odb_read(&o, so, id), 0);
	assert_int_equal(git_odb_write(&got, d, git_odb_object_data(o), git_odb_object_size(o), git_odb_object_type(o)),
	                 0);
	assert_true(git_oid_equal(&got, id));
	git_odb_object_free(o);
	git_odb_free(so);
	git_odb_free(d);
}

/* The two ways git's receive-pack takes a pack: index-pack --fix-thin
** (100 objects or more, by default) and unpack-objects (fewer). */
static const char *const receivers[] = {"index-pack --stdin --fix-thin", "unpack-objects -q"};

/* Write the pack, have git take it into dst the way `receiver` does (0 or
** 1: receivers[]); the pack's size.  *first_type: the type of the first
** object in the pack. */
static size_t pack_into_dst_with(two_repos *t, veld_pack *p, int *first_type, int receiver)
{
	unsigned char *buf = NULL;
	size_t len = 0;
	veld_err e;
	memset(&e, 0, sizeof e);
	assert_int_equal(veld_pack__write(&buf, &len, p, &e), 0);
	assert_true(len > 12 + 20);
	assert_memory_equal(buf, "PACK\0\0\0\2", 8);
	if (first_type)
		*first_type = (buf[12] >> 4) & 7;
	assert_int_equal(veld_test_write_file(t->pack_path, buf, len), 0);
	free(buf);
	assert_int_equal(veld_test_sh("git -C '%s' %s <'%s' >/dev/null", t->dst_path, receivers[receiver], t->pack_path),
	                 0);
	return len;
}

static size_t pack_into_dst(two_repos *t, veld_pack *p, int *first_type)
{
	return pack_into_dst_with(t, p, first_type, 0);
}

static int dst_has(two_repos *t, const git_oid *id)
{
	char hex[GIT_OID_HEXSZ + 1];
	git_oid_tostr(hex, sizeof hex, id);
	return veld_test_sh("git -C '%s' cat-file -e %s 2>/dev/null", t->dst_path, hex) == 0;
}

/* ---- random trees -------------------------------------------------------- */

#define MAXE 48

typedef struct ent {
	char name[8];
	git_filemode_t mode;
	git_oid id;
} ent;

/* Names from a small alphabet, so that some are prefixes of others and
** '-', '.' and '/' order against the end of a name (git's tree order puts
** a tree "a" as "a/", after "a.b" and "a-"). */
static void random_name(char *out, uint64_t *rng)
{
	static const char alpha[] = "a.-0b";
	unsigned n = 1 + veld_test_rng_below(rng, 3), i;
	for (i = 0; i < n; i++)
		out[i] = alpha[veld_test_rng_below(rng, sizeof alpha - 1)];
	out[n] = '\0';
	if (out[0] == '.' && (n == 1 || (n == 2 && out[1] == '.')))
		out[0] = 'b'; /* "." and ".." are no names */
}

static git_filemode_t random_mode(uint64_t *rng)
{
	static const git_filemode_t modes[] = {GIT_FILEMODE_BLOB, GIT_FILEMODE_TREE, GIT_FILEMODE_BLOB_EXECUTABLE};
	return modes[veld_test_rng_below(rng, 3)];
}

static void random_oid(git_oid *id, uint64_t *rng)
{
	size_t i;
	for (i = 0; i < GIT_OID_RAWSZ; i++)
		id->id[i] = (unsigned char)veld_test_rng_next(rng);
}

static int find(const ent *v, size_t n, const char *name)
{
	size_t i;
	for (i = 0; i < n; i++)
		if (!strcmp(v[i].name, name))
			return (int)i;
	return -1;
}

static git_oid write_tree(git_repository *r, const ent *v, size_t n)
{
	git_treebuilder *b;
	git_oid id;
	size_t i;
	assert_int_equal(git_treebuilder_new(&b, r, NULL), 0);
	for (i = 0; i < n; i++)
		assert_int_equal(git_treebuilder_insert(NULL, b, v[i].name, &v[i].id, v[i].mode), 0);
	assert_int_equal(git_treebuilder_write(&id, b), 0);
	git_treebuilder_free(b);
	return id;
}

static void test_pack__random_tree_deltas_rebuild_the_same_trees(void **state)
{
	two_repos t;
	uint64_t seed = 0x7e1d5eedULL, rng = seed;
	unsigned round, deltas = 0, must = 0;
	(void)state;
	/* entries name objects that exist nowhere: trees are what is tested */
	git_libgit2_opts(GIT_OPT_ENABLE_STRICT_OBJECT_CREATION, 0);
	repos_up(&t, "pack-random");
	print_message("seed %llu\n", (unsigned long long)seed);
	for (round = 0; round < 150; round++) {
		ent base[MAXE], next[MAXE];
		size_t nb = 0, nn, k, muts = 1 + veld_test_rng_below(&rng, 3);
		git_oid bid, nid;
		veld_pack *p = NULL;
		veld_err e;
		int type = 0;
		unsigned want = 1 + veld_test_rng_below(&rng, MAXE - 4);
		memset(&e, 0, sizeof e);
		for (k = 0; nb < want && k < 4 * MAXE; k++) {
			ent x;
			random_name(x.name, &rng);
			if (find(base, nb, x.name) >= 0)
				continue;
			x.mode = random_mode(&rng);
			random_oid(&x.id, &rng);
			base[nb++] = x;
		}
		memcpy(next, base, sizeof base);
		nn = nb;
		for (k = 0; k < muts; k++) {
			unsigned what = veld_test_rng_below(&rng, 4), at = veld_test_rng_below(&rng, (unsigned)nn);
			if (what == 0 && nn) {
				random_oid(&next[at].id, &rng); /* an entry changes */
			} else if (what == 1 && nn > 1) {
				next[at] = next[--nn]; /* an entry goes */
			} else if (what == 2 && nn) {
				next[at].mode = next[at].mode == GIT_FILEMODE_TREE ? GIT_FILEMODE_BLOB : GIT_FILEMODE_TREE;
			} else if (nn < MAXE) {
				ent x;
				random_name(x.name, &rng);
				x.mode = random_mode(&rng);
				random_oid(&x.id, &rng);
				if (find(next, nn, x.name) < 0)
					next[nn++] = x; /* an entry comes */
			}
		}
		bid = write_tree(t.src, base, nb);
		nid = write_tree(t.src, next, nn);
		if (git_oid_equal(&bid, &nid))
			continue;
		copy_object(&t, &bid);
		assert_int_equal(veld_pack__new(&p, t.src, &e), 0);
		assert_int_equal(veld_pack__add(p, &nid, &bid, &e), 0);
		assert_int_equal(veld_pack__count(p), 1);
		pack_into_dst_with(&t, p, &type, (int)(round % 2));
		veld_pack__free(p);
		if (!dst_has(&t, &nid))
			fail_msg("round %u (seed %llu): the tree did not come out of the pack as itself", round,
			         (unsigned long long)seed);
		deltas += type == 7;
		/* a tree of 16+ entries with at most 3 of them touched: a delta */
		if (nb >= 16 && muts <= 3) {
			must++;
			if (type != 7)
				fail_msg("round %u (seed %llu): a tree of %zu entries went whole", round, (unsigned long long)seed,
				         nb);
		}
	}
	print_message("%u of 150 trees sent as deltas (%u had to be)\n", deltas, must);
	assert_true(must > 20);
	git_libgit2_opts(GIT_OPT_ENABLE_STRICT_OBJECT_CREATION, 1);
	repos_down(&t);
}

/* ---- a change of one record in a large tree ----------------------------- */

static git_oid commit_tree(git_repository *r, const git_oid *tree, const git_oid *parent)
{
	git_signature *sig;
	git_tree *t;
	git_commit *pc = NULL;
	git_oid id;
	const git_commit *parents[1];
	assert_int_equal(git_signature_new(&sig, "veld", "veld@example.invalid", 1700000000, 0), 0);
	assert_int_equal(git_tree_lookup(&t, r, tree), 0);
	if (parent)
		assert_int_equal(git_commit_lookup(&pc, r, parent), 0);
	parents[0] = pc;
	assert_int_equal(git_commit_create(&id, r, "refs/heads/main", sig, sig, NULL, "sync", t, parent ? 1 : 0, parents),
	                 0);
	git_commit_free(pc);
	git_tree_free(t);
	git_signature_free(sig);
	return id;
}

static void test_pack__one_changed_entry_of_a_large_tree_is_a_small_delta(void **state)
{
	two_repos t;
	git_treebuilder *b;
	git_oid blob, tree1, tree2, c1, c2, changed;
	git_odb *odb;
	size_t i, len, tree_size;
	veld_pack *p = NULL;
	veld_err e;
	char name[16], hex[GIT_OID_HEXSZ + 1];
	(void)state;
	memset(&e, 0, sizeof e);
	repos_up(&t, "pack-large");
	/* 2,000 blobs in one tree, committed; dst gets all of it from git */
	assert_int_equal(git_treebuilder_new(&b, t.src, NULL), 0);
	for (i = 0; i < 2000; i++) {
		char body[32];
		int n = snprintf(body, sizeof body, "record %zu", i);
		snprintf(name, sizeof name, "r%05zu", i);
		assert_int_equal(git_blob_create_from_buffer(&blob, t.src, body, (size_t)n), 0);
		assert_int_equal(git_treebuilder_insert(NULL, b, name, &blob, GIT_FILEMODE_BLOB), 0);
	}
	assert_int_equal(git_treebuilder_write(&tree1, b), 0);
	c1 = commit_tree(t.src, &tree1, NULL);
	assert_int_equal(veld_test_sh("rm -rf '%s' && git clone -q --bare --no-local '%s' '%s'", t.dst_path, t.src_path,
	                              t.dst_path),
	                 0);
	/* one record changes */
	assert_int_equal(git_blob_create_from_buffer(&changed, t.src, "record 1234, edited", 19), 0);
	assert_int_equal(git_treebuilder_insert(NULL, b, "r01234", &changed, GIT_FILEMODE_BLOB), 0);
	assert_int_equal(git_treebuilder_write(&tree2, b), 0);
	git_treebuilder_free(b);
	c2 = commit_tree(t.src, &tree2, &c1);
	assert_int_equal(git_repository_odb(&odb, t.src), 0);
	{
		git_odb_object *o;
		assert_int_equal(git_odb_read(&o, odb, &tree2), 0);
		tree_size = git_odb_object_size(o);
		git_odb_object_free(o);
	}
	git_odb_free(odb);
	assert_int_equal(veld_pack__new(&p, t.src, &e), 0);
	assert_int_equal(veld_pack__add(p, &c2, NULL, &e), 0);
	assert_int_equal(veld_pack__add(p, &tree2, &tree1, &e), 0);
	assert_int_equal(veld_pack__add(p, &changed, NULL, &e), 0);
	assert_int_equal(veld_pack__add(p, &changed, NULL, &e), 0); /* twice: written once */
	len = pack_into_dst(&t, p, NULL);
	assert_int_equal(veld_pack__count(p), 3);
	veld_pack__free(p);
	print_message("one entry of a %zu-byte tree: a pack of %zu bytes\n", tree_size, len);
	assert_true(tree_size > 50000);
	assert_true(len < 400);
	assert_true(dst_has(&t, &c2) && dst_has(&t, &tree2) && dst_has(&t, &changed));
	git_oid_tostr(hex, sizeof hex, &c2);
	assert_int_equal(veld_test_sh("git -C '%s' update-ref refs/heads/main %s && git -C '%s' fsck --strict "
	                              ">/dev/null 2>&1",
	                              t.dst_path, hex, t.dst_path),
	                 0);
	repos_down(&t);
}

/* A base the pack carries itself is not used: the tree goes whole (and
** git still takes the pack). */
static void test_pack__a_base_inside_the_pack_is_not_used(void **state)
{
	two_repos t;
	ent v[20];
	git_oid t1, t2;
	veld_pack *p = NULL;
	veld_err e;
	uint64_t rng = 42;
	size_t i;
	(void)state;
	memset(&e, 0, sizeof e);
	git_libgit2_opts(GIT_OPT_ENABLE_STRICT_OBJECT_CREATION, 0);
	repos_up(&t, "pack-inner");
	for (i = 0; i < 20; i++) {
		snprintf(v[i].name, sizeof v[i].name, "e%02zu", i);
		v[i].mode = GIT_FILEMODE_BLOB;
		random_oid(&v[i].id, &rng);
	}
	t1 = write_tree(t.src, v, 20);
	random_oid(&v[7].id, &rng);
	t2 = write_tree(t.src, v, 20);
	assert_int_equal(veld_pack__new(&p, t.src, &e), 0);
	assert_int_equal(veld_pack__add(p, &t2, &t1, &e), 0);
	assert_int_equal(veld_pack__add(p, &t1, NULL, &e), 0);
	pack_into_dst(&t, p, NULL);
	veld_pack__free(p);
	assert_true(dst_has(&t, &t1) && dst_has(&t, &t2));
	assert_int_equal(veld_test_sh("git verify-pack -v '%s'/objects/pack/*.idx | grep -q 'chain length'", t.dst_path),
	                 1);
	git_libgit2_opts(GIT_OPT_ENABLE_STRICT_OBJECT_CREATION, 1);
	repos_down(&t);
}

/* A pack written to disk stores its objects (sealed records do not
** compress, and deflating them was cost without gain); the pack a push
** sends is deflated.  Both are packs git takes, with the same objects. */
static void test_pack__stored_on_disk_deflated_for_the_wire(void **state)
{
	two_repos t;
	char text[8192];
	git_oid blob;
	size_t i, len[2];
	veld_err e;
	(void)state;
	memset(&e, 0, sizeof e);
	repos_up(&t, "pack-level");
	for (i = 0; i < sizeof text; i++)
		text[i] = "contactregistratie "[i % 19];
	assert_int_equal(git_blob_create_from_buffer(&blob, t.src, text, sizeof text), 0);
	for (i = 0; i < 2; i++) {
		veld_pack *p = NULL;
		assert_int_equal(veld_pack__new(&p, t.src, &e), 0);
		if (i == 1)
			veld_pack__for_the_wire(p);
		assert_int_equal(veld_pack__add(p, &blob, NULL, &e), 0);
		len[i] = pack_into_dst(&t, p, NULL);
		veld_pack__free(p);
		assert_true(dst_has(&t, &blob));
	}
	assert_true(len[0] > sizeof text);     /* on disk: stored as it is */
	assert_true(len[1] < sizeof text / 8); /* on the wire: deflated */
	assert_int_equal(veld_test_sh("git -C '%s' fsck --strict >/dev/null 2>&1", t.dst_path), 0);
	repos_down(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pack__random_tree_deltas_rebuild_the_same_trees),
		cmocka_unit_test(test_pack__one_changed_entry_of_a_large_tree_is_a_small_delta),
		cmocka_unit_test(test_pack__a_base_inside_the_pack_is_not_used),
		cmocka_unit_test(test_pack__stored_on_disk_deflated_for_the_wire),
	};
	int rc;
	git_libgit2_init();
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	git_libgit2_shutdown();
	return rc;
}
