/*
** git.h — the git layer of sync/ (the one header of sync/git/): a thin layer
** over libgit2 that knows git, not veld.  sync/sync.h includes it.
**
** It gives sync.c a bare repository, trees updated at a few paths, commits
** signed in a custom header, diffs of trees, refs, fetch and push with
** refusals surfaced, and a repack with prune.  What a path, a ref or a
** signer means is the caller's business.
**
** One file per concern (the way libgit2 keeps odb_mempack.c, its transports,
** pack-objects.c and indexer.c apart), listed from the bottom up; a file
** calls only files above it in this list, never one below (no circle):
**   error.c      libgit2 codes to veld codes, URL redaction, a hub's reason,
**                a progress report that can cancel: a leaf
**   files.c      every file operation of the layer, through the veld_os
**                table (listings, removals, fsync, mtimes), and strlist
**   check.c      is a repository intact: pack indexes against their
**                packs by git's checksums, every object read back, every
**                link of a ref, commit or tree there; indexes alone at open
**   pack.c       the pack writer (whole objects, or trees as deltas)
**   odb.c        the in-memory batch of new objects and its flush into one
**                pack through libgit2's indexer (veld_git__pack_store)
**   repo.c       the handle: libgit2 set-up, init/open/free, stale locks
**   tree.c       blobs, tree update and lookup
**   diff.c       the diff of two trees that reads only what differs
**   commit.c     signed commits, their verification, commit facts, the
**                commits a fetch brought
**   refs.c       read, set, list
**   move.c       object selection: what a change added, found from its
**                trees (for the two transports of our own below)
**   pathhub.c    fetch from and push to a hub on a path, no transport
**   http.c       the smart-HTTP receive-pack exchange (libcurl)
**   push_http.c  a push over smart HTTP: move.c's pack, http.c's exchange
**   transport.c  fetch / ls-remote / push: dispatch to pathhub.c and
**                push_http.c, else libgit2's transports with credentials,
**                progress and the server's refusals
**   maintain.c   repack and prune
** A cut beyond the one first drawn: move.c is apart from pathhub.c because
** push_http.c selects objects the same way and must not call "sideways"
** into the path transport; files.c holds every OS call, so the OS seam is
** one file to read.
**
** libgit2's own global state (git_libgit2_init, GIT_OPT_ENABLE_FSYNC_GITDIR,
** the size of tree it caches) is set up once per process by
** veld_repo__open/init; everything else hangs off the handle.  Each handle
** holds one git_libgit2_init(), released by veld_repo__free.  Every
** function returns 0 or a negative VELD_E* code with a message in `err` (a
** callback's own non-zero return is passed through where noted).
**
** The first part is the interface sync.c uses; the second ("inside
** sync/git", behind VELD_GIT_INSIDE) is shared by the layer's files only.
*/
#ifndef VELD_GIT_H
#define VELD_GIT_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#include <git2.h>

#include "core.h"

/* ---- the repository handle (repo.c) -------------------------------------- */

typedef struct veld_repo veld_repo;

/* Create a bare repository at `path` (must not exist or be empty, else
** VELD_EEXISTS) / open one (VELD_ENOTFOUND if there is none).
** Files the layer itself touches (stale locks, maintain's listings and
** removals) go through `os` (NULL, or a table older than version 2, which
** lacks the directory entries: veld_os_default()). */
int veld_repo__init(veld_repo **out, const veld_os *os, const char *path, veld_err *err);
int veld_repo__open(veld_repo **out, const veld_os *os, const char *path, veld_err *err);
void veld_repo__free(veld_repo *r); /* NULL ok */
/* A hub on a path that fetch and push used stays open with the handle
** (reopened when another process repacked it); release it now, e.g. before
** repacking that hub through another handle.  NULL ok. */
void veld_repo__hub_release(veld_repo *r);
/* Remove lock files a killed process left in the repository (refs/ and the
** top-level ones).  Only for a caller that knows no other process uses the
** repository (the store's exclusive lock).  Returns how many went. */
int veld_repo__clear_stale_locks(veld_repo *r);
/* The libgit2 repository, owned by the handle.  Valid until the next
** veld_repo__maintain (which reopens it) or veld_repo__free: fetch it
** again rather than keeping it. */
git_repository *veld_repo__git(veld_repo *r);

/* ---- objects (tree.c, diff.c, commit.c, refs.c) ------------------------- */

/* Write a blob; read one (malloc'd copy, free()).  A damaged object is
** VELD_EINTEGRITY, a missing one VELD_ENOTFOUND. */
int veld_repo__blob_write(git_oid *out, veld_repo *r, const void *buf, size_t len, veld_err *err);
int veld_repo__blob_read(unsigned char **buf, size_t *len, veld_repo *r, const git_oid *id, veld_err *err);

/* One change to a tree: set `path` to blob `id`, or remove it (id NULL). */
typedef struct veld_tree_change {
	const char *path;  /* "cases/ab/c/<case>/<record>" */
	const git_oid *id; /* NULL: remove */
} veld_tree_change;

/* New tree = `base` (NULL: empty) with `changes` applied (intermediate
** trees created or pruned when empty).  Cost grows with the changes, not
** the tree (git_tree_create_updated).  Removing an absent path is a no-op.
** VELD_EINVALID for a malformed path (empty component, ".", "..", leading
** or trailing '/') or a path given twice; a file and a directory of the
** same name within one call ("a" removed, "a/b" added) is a libgit2 error:
** do it in two calls. */
int veld_repo__tree_update(git_oid *out, veld_repo *r, const git_oid *base,
                           const veld_tree_change *changes, size_t n, veld_err *err);

/* Look up the blob at `path` in tree `tree`: 0 and *out, VELD_ENOTFOUND
** (also when `path` is a directory or `tree` is NULL), or error. */
int veld_repo__tree_lookup(git_oid *out, veld_repo *r, const git_oid *tree, const char *path,
                           veld_err *err);

/* The same for a directory: the tree at `path`. */
int veld_repo__tree_lookup_dir(git_oid *out, veld_repo *r, const git_oid *tree, const char *path,
                               veld_err *err);

/* Signing: called with the commit buffer; writes a 64-byte Ed25519 signature. */
typedef int (*veld_sign_cb)(unsigned char *sig64, const unsigned char *msg, size_t len, void *payload);

/* Create a commit of `tree` with `parents`, author/committer `signer` at
** time `when_ms`, message `msg`, signed in header "veldsig" as
** "<signer> <base64 signature>".  Does not move any ref.  `signer` is 1-64
** of [A-Za-z0-9._-] (else VELD_EINVALID); the e-mail is
** "<signer>@veld.invalid", the time when_ms / 1000 at offset +0000; `msg`
** is stored as given.  A non-zero return from `sign` is VELD_ERROR. */
int veld_repo__commit(git_oid *out, veld_repo *r, const git_oid *tree, const git_oid *parents,
                      size_t n_parents, const char *signer, int64_t when_ms, const char *msg,
                      veld_sign_cb sign, void *payload, veld_err *err);

/* Extract the veldsig of a commit: signer id (at most 64 chars) and the
** signature over the signed data; then check with `pubkey_cb`, which
** returns the signer's 32-byte Ed25519 public key or VELD_ENOTFOUND.
** VELD_EINTEGRITY: unsigned, malformed or bad signature, unknown signer
** (message names the commit and the failure).  VELD_ENOTFOUND: no such
** commit.  Another negative return from `pubkey` is passed through.
** signer_out (NULL ok) gets the signer id as soon as the header parses,
** so a caller can name it even on a bad signature; "" before that. */
typedef int (*veld_pubkey_cb)(unsigned char *pk32, const char *signer, void *payload);
int veld_repo__commit_verify(char *signer_out, size_t signer_cap, veld_repo *r, const git_oid *commit,
                             veld_pubkey_cb pubkey, void *payload, veld_err *err) VELD_WARN_UNUSED;

/* Commit facts.  commit_parents writes at most `cap` ids and sets *n to
** the number of parents; more than `cap` is VELD_EINVALID. */
int veld_repo__commit_tree(git_oid *tree_out, veld_repo *r, const git_oid *commit, veld_err *err);
int veld_repo__commit_parents(git_oid *parents, size_t cap, size_t *n, veld_repo *r,
                              const git_oid *commit, veld_err *err);

/* Commits reachable from `head` but not from any of `stop` (oldest first),
** for verification of what a fetch brought: parents always before their
** children.  A stop that is not in the repository is ignored.  *out
** malloc'd (free(); NULL when *n is 0).  VELD_ENOTFOUND if head is absent. */
int veld_repo__new_commits(git_oid **out, size_t *n, veld_repo *r, const git_oid *head,
                           const git_oid *stop, size_t n_stop, veld_err *err);

/* Blob paths that differ between two trees (either may be NULL = empty):
** calls `cb(path, old_id or NULL, new_id or NULL, payload)` per changed
** file; a non-zero return stops and is returned.  Order: byte order of the
** paths.  No rename detection: a moved file is a delete and an add.  Only
** subtrees whose ids differ are read (cost grows with the change). */
typedef int (*veld_diff_cb)(const char *path, const git_oid *old_id, const git_oid *new_id, void *payload);
int veld_repo__diff(veld_repo *r, const git_oid *old_tree, const git_oid *new_tree, veld_diff_cb cb,
                    void *payload, veld_err *err);

/* Refs: read (VELD_ENOTFOUND if absent), set (force; VELD_EINVALID for a
** malformed name), list by prefix (plain string prefix, not a glob; sorted
** by name; symbolic refs resolved, dangling ones skipped; a non-zero return
** from `cb` stops and is returned). */
int veld_repo__ref_get(git_oid *out, veld_repo *r, const char *name, veld_err *err);
int veld_repo__ref_set(veld_repo *r, const char *name, const git_oid *id, veld_err *err);
typedef int (*veld_ref_cb)(const char *name, const git_oid *id, void *payload);
int veld_repo__ref_list(veld_repo *r, const char *prefix, veld_ref_cb cb, void *payload, veld_err *err);

/* ---- fetch and push (transport.c) --------------------------------------- */

/* Remote transfer.  `url` is a path or an http(s)/ssh URL.  Credentials for
** HTTP come from the callback (user, password into caller buffers); SSH
** uses the agent.  Progress: called with (stage text, done, total). */
typedef int (*veld_cred_cb)(char *user, size_t ucap, char *pass, size_t pcap, const char *url, void *payload);
/* A non-zero return from progress cancels the transfer (VELD_ECANCELED). */
typedef int (*veld_progress_cb)(const char *stage, size_t done, size_t total, void *payload);
typedef struct veld_remote_opts {
	veld_cred_cb cred;
	veld_progress_cb progress;
	void *payload;
} veld_remote_opts;

/* Either transfer: a credential kind (user/password, SSH agent) is tried
** once; asked again means refused: VELD_EAUTH "authentication failed for
** <url>" (URL messages never show user-info).  url.insteadOf is ignored.
** A non-zero return from opts->progress cancels: VELD_ECANCELED, and no
** ref has moved (here or on the hub). */

/* A hub given as an URL ("https://...", "file://...", "user@host:path")
** rather than as a path to a bare repository. */
int veld_repo__is_url(const char *hub);

/* Fetch `refspecs` (e.g. "+refs/veld/devices/\*:refs/veld-hub/veld/devices/\*"):
** no tags; the refs named by the refspecs updated, and local refs under a
** refspec's destination that the remote no longer has are pruned.  (libgit2
** 1.5 leaves an empty FETCH_HEAD file behind.) */
int veld_repo__fetch(veld_repo *r, const char *url, const char *const *refspecs, size_t n,
                     const veld_remote_opts *opts, veld_err *err);
/* The refs the remote advertises (name, id), in its order. */
int veld_repo__ls_remote(veld_repo *r, const char *url, const veld_remote_opts *opts, veld_ref_cb cb,
                         void *payload, veld_err *err);
/* Push `refspecs`; a ref the server refuses (reported only through
** push_update_reference) is an error naming the ref and the server's reason
** (VELD_EDENIED): its status ("hook declined") and, when the server sent
** one, its message line about the ref (the hook's stderr).  A non-fast-forward refspec
** without '+' is refused by libgit2 before sending: VELD_EDENIED naming the ref too.  A push to a
** path runs no hooks on the other side. */
int veld_repo__push(veld_repo *r, const char *url, const char *const *refspecs, size_t n,
                    const veld_remote_opts *opts, veld_err *err);

/* ---- errors (error.c) --------------------------------------------------- */

/* Set err from a failed libgit2 call: "<what>: <libgit2 text>".  The code is
** `code` if it is non-zero, else mapped from grc (error.c's table: damaged
** objects are VELD_EINTEGRITY).  Returns the veld code. */
int veld_git__fail(veld_err *err, int grc, int code, const char *fmt, ...)
#if defined(__GNUC__)
	__attribute__((format(printf, 4, 5)))
#endif
	;

/* What a hub said about `ref` among its messages ("remote: ..." lines): the
** first line naming it other than "hook declined to update <ref>", else the
** line before that one.  Printable ASCII into out. */
void veld_repo__remote_reason(char *out, size_t cap, const char *remote_text, const char *ref);

/* ---- push over smart HTTP (http.c) ------------------------------------- */

/* One session with a smart-HTTP hub: its URL, the credentials once asked,
** what the hub said.  push_http.c packs; this carries the pack. */
typedef struct veld_http veld_http;
typedef int (*veld_http_ref_cb)(const char *name, const char *oid_hex, void *payload);
typedef struct veld_http_update {
	const char *name;
	char old_hex[41]; /* forty zeros: create */
	char new_hex[41];
} veld_http_update;

int veld_http__open(veld_http **out, const char *url, const veld_remote_opts *opts, veld_err *err);
void veld_http__free(veld_http *h); /* accepts NULL; wipes the password */
/* The refs the hub's receive-pack advertises; cb non-zero stops. */
int veld_http__refs(veld_http *h, veld_http_ref_cb cb, void *payload, veld_err *err);
/* Send the updates and the pack.  A ref the hub refuses: VELD_EDENIED
** "push of <ref> to <url> refused by the server: <why> (<hub's message>)". */
int veld_http__push(veld_http *h, const veld_http_update *u, size_t n, const void *pack, size_t len,
                    veld_err *err);

/* ---- packs (pack.c) ----------------------------------------------------- */

/* Objects to pack, each whole or, for a tree with a `base`, as a delta
** against that tree (one the hub has: a base also in the pack is not used).
** The pack is thin: the receiver completes it with the bases it has. */
typedef struct veld_pack veld_pack;
int veld_pack__new(veld_pack **out, git_repository *repo, veld_err *err);
/* Objects are stored in zlib streams without compression (a pack written
** to disk); a pack sent over the network is deflated at the default level. */
void veld_pack__for_the_wire(veld_pack *p);
void veld_pack__free(veld_pack *p); /* accepts NULL */
int veld_pack__add(veld_pack *p, const git_oid *id, const git_oid *base, veld_err *err);
size_t veld_pack__count(const veld_pack *p);
/* The pack, in git's format version 2, handed to `cb` in chunks (the
** header, one object at a time, the checksum); a non-zero return from cb
** stops the write and is returned.  Objects added more than once are
** written once. */
typedef int (*veld_pack_write_cb)(const void *data, size_t len, void *payload, veld_err *err);
int veld_pack__stream(veld_pack *p, veld_pack_write_cb cb, void *payload, veld_err *err);
/* The same pack in one buffer; *out malloc'd. */
int veld_pack__write(unsigned char **out, size_t *out_len, veld_pack *p, veld_err *err);

/* ---- the object batch (odb.c) and maintenance (maintain.c) ------------- */

/* Write the objects made since the last flush (held in memory until then,
** and read from there) into the repository as one pack.  ref_set does it
** before it moves a ref, maintain before it repacks, free at the end; a
** caller that hands the repository to another program does it first. */
int veld_repo__flush(veld_repo *r, veld_err *err);

/* Repack: everything reachable from the refs (and HEAD) into one new pack,
** then delete the loose objects and old packs it makes redundant; prune
** unreachable objects older than `prune_age_s` (0: all; negative: keep
** them).  The caller decides when (e.g. after N syncs, or after an erasure
** with 0).  With 0, nothing else may write to the repository meanwhile
** (hold the store's write lock).  Reopens the libgit2 repository (see
** veld_repo__git).  Cost: the whole repository.  Algorithm in maintain.c. */
int veld_repo__maintain(veld_repo *r, int prune_age_s, veld_err *err);

/* Check the whole repository (check.c): every pack index against its pack
** (git's SHA-1 checksums of both files, the pack's checksum in the index,
** headers and counts), every object read back (its hash), every object a
** ref, a commit or a tree names present.  Stops at the first fault:
** VELD_EINTEGRITY with a message naming the file or the object.  Reads
** only; objects not yet flushed are read from memory.  Cost: the whole
** repository, read once. */
int veld_repo__check(veld_repo *r, veld_err *err);

/* ==== inside sync/git ===================================================== */

/* Only the layer's own files see what follows (each defines VELD_GIT_INSIDE
** before it includes this header): to sync.c a veld_repo stays opaque. */
#ifdef VELD_GIT_INSIDE

#define VELD_GIT_PATHBUF (PATH_MAX + 128) /* a path under objects/ */

/* A growable list of strings (files.c). */
typedef struct veld_strlist {
	char **v;
	size_t n, cap;
} veld_strlist;
int veld_strlist__add(veld_strlist *l, const char *s); /* -1: out of memory */
void veld_strlist__free(veld_strlist *l);              /* zeroes *l */

typedef struct veld_git_batch veld_git_batch;

/* A ref lock file in a hub on a path older than this is a killed
** process's (pathhub.c): git holds a ref's lock only while it updates it. */
#define VELD_GIT_STALE_LOCK_S 10

struct veld_repo {
	git_repository *git;
	char *path;             /* as given to init/open */
	const veld_os *os;      /* at least version 2: the files this layer touches */
	int lib_inited;         /* this handle holds one git_libgit2_init() */
	veld_git_batch *batch;  /* new objects, held until a ref names them (odb.c) */
	/* A hub on a path, kept open between syncs (pathhub.c). */
	git_repository *hub;
	char *hub_path;
	veld_strlist hub_packs; /* its packs when it was last used */
};

/* error.c.  A URL fit for messages: the user-info part left out. */
void veld_git__redact_url(char *out, size_t cap, const char *url);
/* Report progress; a non-zero answer is VELD_ECANCELED ("<what>: canceled
** by the caller"), else 0.  opts or its callback NULL: 0. */
int veld_git__progress(const veld_remote_opts *opts, const char *stage, size_t done, size_t total,
                       const char *what, veld_err *err);

/* files.c: the layer's file operations, all through `os`.  The listings
** set err on failure (VELD_ERROR "maintain: cannot read <dir>: <why>");
** the others set nothing and return what is said of each. */
/* 1 if `path` does not exist or is an empty directory, 0 if it has
** entries, negative (an errno value) if it cannot be read. */
int veld_git__dir_is_empty(const veld_os *os, const char *path);
/* Remove "*.lock" files below `dir` (recursively, no link followed);
** returns how many went. */
int veld_git__remove_locks(const veld_os *os, const char *dir);
/* Packs under `packdir` by their names "pack-<hex>" (from the .idx); a
** missing directory lists nothing. */
int veld_git__list_packs(veld_strlist *out, const veld_os *os, const char *packdir, veld_err *err);
/* Loose objects under `objdir`: their 40-hex ids. */
int veld_git__list_loose(veld_strlist *out, const veld_os *os, const char *objdir, veld_err *err);
/* fsync a file or a directory (-errno on failure). */
int veld_git__fsync(const veld_os *os, const char *path, int is_dir);
/* 1 if `path` was last modified at least `age_s` seconds before `now_ms`
** (age_s 0 or less: always); 0 otherwise or if it cannot be read. */
int veld_git__old_enough(const veld_os *os, const char *path, int age_s, int64_t now_ms);
/* Remove a pack's files, the .idx first; 0 or -errno. */
int veld_git__unlink_pack(const veld_os *os, const char *packdir, const char *name);
/* Remove `path`; a missing one is no error.  0 or -errno. */
int veld_git__unlink(const veld_os *os, const char *path);
/* Read `path` from start to end, handing `cb` one chunk at a time with its
** offset and the file's size (`cb` is not called for an empty file).  0,
** -errno if the file cannot be read, or cb's own non-zero (positive)
** return, which stops the read. */
typedef int (*veld_git_chunk_cb)(const unsigned char *data, size_t len, int64_t off, int64_t size,
                                 void *payload);
int veld_git__read_file(const veld_os *os, const char *path, veld_git_chunk_cb cb, void *payload);

/* check.c.  Every pack index under gitdir ("<repo>/" as libgit2 gives it)
** alone: its checksum, header, fan-out, size, and every offset inside its
** pack.  VELD_EINTEGRITY naming the file.  Cost: the indexes, read once. */
int veld_git__check_indexes(const veld_os *os, const char *gitdir, veld_err *err);

/* odb.c.  Put a fresh batch in front of r->git's object database. */
int veld_git__batch_attach(veld_repo *r, veld_err *err);
/* Write the objects of `p` (whole) into dst as one pack with its index
** (libgit2's indexer), then let dst's object database see it. */
int veld_git__pack_store(git_repository *dst, veld_pack *p, veld_err *err);

/* tree.c.  The tree `id` (NULL id: *out NULL, 0). */
int veld_git__lookup_tree(git_tree **out, veld_repo *r, const git_oid *id, veld_err *err);

/* move.c: the objects a change made, found from its trees.  `dst` is the
** repository they go to when it is at hand (a hub on a path, or ours on a
** fetch from one): an object it has is never taken.  dst NULL: a hub over
** HTTP, the pack thin (trees as deltas against the trees of the bases). */
#define VELD_GIT_MOVE_BASES 34 /* parents of a merge (at most 32) and the ref's old value */
typedef struct veld_moveset {
	veld_pack *pack;       /* what moves (pack.c) */
	int thin;              /* over HTTP: trees as deltas against the hub's */
	git_repository *src;   /* where the objects are */
	git_repository *dst;   /* where they go */
	git_odb *dst_odb;
	veld_err *err;
} veld_moveset;
int veld_git__move_open(veld_moveset *m, git_repository *src, git_repository *dst, veld_err *err);
void veld_git__move_close(veld_moveset *m);
/* The tree of commit `id` (in src, else dst) as a base, or NULL. */
git_tree *veld_git__move_base(veld_moveset *m, const git_oid *id);
/* Commit `id` and what its tree adds to its parents' trees and to
** `oldtree` (or NULL); its parents go to parents[] (*np of them, at most
** VELD_GIT_MOVE_BASES - 1). */
int veld_git__move_commit(veld_moveset *m, const git_oid *id, git_tree *oldtree, git_oid *parents, size_t *np);
/* The commits from `tip` down to those dst has, with their trees; `old`
** (or NULL) is what dst holds for the ref now, a base for every tree. */
int veld_git__move_commits(veld_moveset *m, const git_oid *tip, const git_oid *old);

/* pathhub.c and push_http.c: the transfers transport.c hands on. */
int veld_git__fetch_path(veld_repo *r, const char *url, const char *const *refspecs, size_t n,
                         const veld_remote_opts *opts, veld_err *err);
int veld_git__push_path(veld_repo *r, const char *url, const char *const *refspecs, size_t n,
                        const veld_remote_opts *opts, veld_err *err);
int veld_git__push_http(veld_repo *r, const char *url, const char *const *refspecs, size_t n,
                        const veld_remote_opts *opts, veld_err *err);

#endif /* VELD_GIT_INSIDE */
#endif /* VELD_GIT_H */
