/*
** testutil.c — temp directories, file helpers and byte searches for tests.
** Tests may call the OS directly: they check what veld left on disk.
*/
#define _GNU_SOURCE
#include "testutil.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

char *veld_test_path(const char *dir, const char *name)
{
	size_t n = strlen(dir) + strlen(name) + 2;
	char *p = malloc(n);
	assert_non_null(p);
	snprintf(p, n, "%s/%s", dir, name);
	return p;
}

char *veld_test_tmpdir(const char *tag)
{
	const char *base = getenv("VELD_TEST_TMP");
	char buf[4096];
	static const char hex[] = "0123456789abcdef";
	unsigned char rnd[6];
	char suffix[13];
	size_t i;
	if (!base || !*base)
		base = "/tmp";
	mkdir(base, 0700);
	randombytes_buf(rnd, sizeof rnd);
	for (i = 0; i < sizeof rnd; i++) {
		suffix[2 * i] = hex[rnd[i] >> 4];
		suffix[2 * i + 1] = hex[rnd[i] & 15];
	}
	suffix[12] = '\0';
	snprintf(buf, sizeof buf, "%s/%s-%d-%s", base, tag, (int)getpid(), suffix);
	assert_int_equal(mkdir(buf, 0700), 0);
	return strdup(buf);
}

void veld_test_rmtree(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *e;
	if (!d) {
		unlink(path);
		return;
	}
	while ((e = readdir(d))) {
		char *sub;
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		sub = veld_test_path(path, e->d_name);
		veld_test_rmtree(sub);
		free(sub);
	}
	closedir(d);
	rmdir(path);
}

unsigned char *veld_test_read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	unsigned char *buf;
	long n;
	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc((size_t)n + 1);
	assert_non_null(buf);
	if (n > 0 && fread(buf, 1, (size_t)n, f) != (size_t)n) {
		free(buf);
		fclose(f);
		return NULL;
	}
	fclose(f);
	*len = (size_t)n;
	return buf;
}

int veld_test_write_file(const char *path, const void *buf, size_t len)
{
	FILE *f = fopen(path, "wb");
	if (!f)
		return -1;
	if (len && fwrite(buf, 1, len, f) != len) {
		fclose(f);
		return -1;
	}
	return fclose(f);
}

int veld_test_grep_tree(const char *dir, const void *needle, size_t n)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int found = 0;
	if (!d) {
		size_t len;
		unsigned char *buf = veld_test_read_file(dir, &len);
		if (buf && len >= n && memmem(buf, len, needle, n))
			found = 1;
		free(buf);
		return found;
	}
	while ((e = readdir(d))) {
		char *sub;
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		sub = veld_test_path(dir, e->d_name);
		found += veld_test_grep_tree(sub, needle, n);
		free(sub);
	}
	closedir(d);
	return found;
}

void veld_test_flip_byte(const char *path, long off)
{
	FILE *f = fopen(path, "r+b");
	int c;
	assert_non_null(f);
	assert_int_equal(fseek(f, off, SEEK_SET), 0);
	c = fgetc(f);
	assert_true(c != EOF);
	assert_int_equal(fseek(f, off, SEEK_SET), 0);
	fputc(c ^ 0x01, f);
	fclose(f);
}

void veld_test_fast_options(veld_store_options *o)
{
	veld_store_options_init(o);
	o->pwhash_opslimit = 1;            /* crypto_pwhash_OPSLIMIT_MIN */
	o->pwhash_memlimit = 8192;         /* crypto_pwhash_MEMLIMIT_MIN */
	o->device_name = "test-device";
	o->device_role = "assistant";
}

/* ---- sync fixtures ------------------------------------------------------------ */

veld_store *veld_test_office(const char *dir, const char *hub)
{
	veld_store_options o;
	veld_store *s = NULL;
	veld_test_fast_options(&o);
	o.device_name = "office";
	if (veld_org_init(&s, dir, VELD_TEST_PASS, strlen(VELD_TEST_PASS), "Testorganisatie", hub, &o))
		fail_msg("org init: %s", veld_errmsg(s));
	return s;
}

json_t *veld_test_sync(veld_store *s, int want)
{
	char *sum = NULL;
	json_t *j;
	int rc = veld_sync(&sum, s, NULL);
	if (rc != want)
		fail_msg("sync returned %d, wanted %d: %s (%s)", rc, want, veld_errmsg(s), sum ? sum : "");
	j = sum ? json_loads(sum, 0, NULL) : json_object();
	veld_free(sum);
	return j;
}

veld_store *veld_test_device(char *id_out, veld_store *office, const char *dir, const char *role,
                             const char *region, const char *hub)
{
	veld_store_options o;
	veld_store *s = NULL;
	char *req = NULL, id[VELD_IDSIZE];
	veld_test_fast_options(&o);
	o.device_role = role;
	o.device_name = role;
	if (veld_store_create(&s, dir, VELD_TEST_PASS, strlen(VELD_TEST_PASS), &o))
		fail_msg("device create: %s", veld_errmsg(s));
	if (veld_store_device_json(&req, s))
		fail_msg("device json: %s", veld_errmsg(s));
	if (veld_enroll(id, office, req, region))
		fail_msg("enroll: %s", veld_errmsg(office));
	veld_free(req);
	json_decref(veld_test_sync(office, VELD_OK));
	if (veld_join(s, hub, NULL))
		fail_msg("join: %s", veld_errmsg(s));
	if (id_out)
		memcpy(id_out, id, VELD_IDSIZE);
	return s;
}
