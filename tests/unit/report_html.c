/*
** report_html.c — the HTML reports in a real browser.
**
** jaarcijfers and evolutie are rendered to HTML and opened in headless
** Chromium (Debian's `chromium`, installed by tools/setup), which takes a
** screenshot of each.  The page must render: the PNG exists, has the
** window's size and carries far more than an empty page does (a blank
** page of the same size compresses to a few kilobytes), and the DOM the
** browser built holds the inline SVG charts (bars, lines) and the Dutch
** headings.  In the line chart (evolutie) every series can be told apart:
** its own legend key (colour and dash), colours far apart, and no line
** drawn over another even where scores coincide.  The screenshots stay in
** $VELD_TEST_TMP/report-html-* for a person to look at.  Without chromium the test is skipped, saying so.
*/
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int no_fsync(void *ctx, int fd)
{
	(void)ctx;
	(void)fd;
	return 0;
}

static int have_chromium(void)
{
	return system("command -v chromium >/dev/null 2>&1") == 0;
}

static const char CHROMIUM[] =
	"timeout 180 chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run "
	"--disable-background-networking --disable-component-update --disable-sync "
	"--user-data-dir=%s --window-size=1200,1600";

/* Run chromium on `html` with `what` (--screenshot=FILE or --dump-dom),
** stdout to `out`.  Returns the exit status. */
static int chromium(const char *dir, const char *what, const char *html, const char *out)
{
	char cmd[4096], profile[1024];
	int n;
	snprintf(profile, sizeof profile, "%s/profile", dir);
	n = snprintf(cmd, sizeof cmd, CHROMIUM, profile);
	snprintf(cmd + n, sizeof cmd - (size_t)n, " %s file://%s >%s 2>%s/chromium.log", what, html, out, dir);
	return system(cmd);
}

static long file_size(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

/* Width and height from the PNG's IHDR; 0 if not a PNG. */
static int png_size(const char *path, unsigned *w, unsigned *h)
{
	size_t len = 0;
	unsigned char *p = veld_test_read_file(path, &len);
	static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
	int ok = p && len > 24 && !memcmp(p, sig, 8) && !memcmp(p + 12, "IHDR", 4);
	if (ok) {
		*w = (unsigned)p[16] << 24 | (unsigned)p[17] << 16 | (unsigned)p[18] << 8 | p[19];
		*h = (unsigned)p[20] << 24 | (unsigned)p[21] << 16 | (unsigned)p[22] << 8 | p[23];
	}
	free(p);
	return ok;
}

static void write_report(veld_store *s, const char *name, const char *params, const char *path)
{
	char *out = NULL;
	if (veld_report(&out, s, name, params, "html"))
		fail_msg("report %s: %s", name, veld_errmsg(s));
	assert_int_equal(veld_test_write_file(path, out, strlen(out)), 0);
	veld_free(out);
}

static void fill_store(veld_store *s, char *evo_case)
{
	static const char *const plaats[] = {"huisbezoek", "zitdag", "werkplaats", "hoofdzetel", "elders"};
	static const char *const prob[] = {"psychosociaal", "administratief", "gezondheid", "financieel",
	                                   "materieel", "tewerkstelling"};
	static const char *const detail[] = {"schulden", "huisvesting", "fysieke_gezondheid",
	                                     "psychische_gezondheid", "stress", "werking_sociale_dienst"};
	static const char *const dom[] = {
		"familiale_situatie", "huisvesting", "gezondheid_lichamelijk", "gezondheid_psychisch", "inkomen",
		"budget_schulden", "administratie", "mobiliteit", "opleiding_vorming", "werk", "vrije_tijd",
		"zelfvertrouwen", "communicatie", "ict_vaardigheden", "sociaal_netwerk", "organisatie_planning"};
	static const char *const dates[] = {"2023-01-10", "2023-06-15", "2024-01-20"};
	char cid[VELD_IDSIZE], rid[VELD_IDSIZE], buf[4096];
	int i, b;
	for (i = 0; i < 600; i++) {
		if (i % 40 == 0 && veld_case_new(cid, s, "{\"name\": \"Cliënt\", \"postcode\": \"1500\"}"))
			fail_msg("case: %s", veld_errmsg(s));
		snprintf(buf, sizeof buf,
		         "{\"datum\": \"%d-%02d-%02d\", \"plaats\": \"%s\", \"problematiek\": [\"%s\", \"%s\"],"
		         " \"detail\": [\"%s\"]}",
		         i % 2 ? 2017 : 2016, 1 + i % 12, 1 + i % 28, plaats[(i * i) % 7 % 5], prob[i % 3],
		         prob[3 + (i / 3) % 3], detail[(i / 2) % 6]);
		if (veld_record_put(rid, s, cid, "contactregistratie", NULL, buf))
			fail_msg("put: %s", veld_errmsg(s));
	}
	if (veld_case_new(evo_case, s, "{\"name\": \"<script>alert(\\\"x\\\")</script> Janssens\", \"postcode\": \"3000\"}"))
		fail_msg("case: %s", veld_errmsg(s));
	for (b = 0; b < 3; b++) {
		int off = snprintf(buf, sizeof buf, "{\"afnamedatum\": \"%s\"", dates[b]);
		for (i = 0; i < 16; i++)
			off += snprintf(buf + off, sizeof buf - (size_t)off, ", \"%s\": {\"score\": %d}", dom[i],
			                3 + (i * 7 + b * 2) % 3);
		snprintf(buf + off, sizeof buf - (size_t)off,
		         ", \"actievoorstellen\": {\"a%d\": {\"domein\": \"huisvesting\", \"doelstelling\": \"Woning\","
		         " \"actie\": \"Inschrijven bij de SHM\", \"status\": \"%s\"}}}",
		         b, b == 2 ? "bereikt" : "lopend");
		if (veld_record_put(rid, s, evo_case, "sociale_balans", NULL, buf))
			fail_msg("balans: %s", veld_errmsg(s));
	}
}

/* The value of attribute `name` in the tag that holds `at` into `out`
** ("" when the tag has none). */
static void attr_of(char *out, size_t n, const char *at, const char *name)
{
	const char *end = strchr(at, '>'), *p;
	char key[64];
	size_t len;
	snprintf(key, sizeof key, " %s=\"", name);
	out[0] = '\0';
	p = strstr(at, key);
	if (!end || !p || p > end)
		return;
	p += strlen(key);
	len = (size_t)(strchr(p, '"') - p);
	snprintf(out, n, "%.*s", (int)len, p);
}

/* Every `needle` tag start in `text`: attribute `a` (and `b`, if given)
** of each, as "a|b", into `out` (at most `max`); returns how many. */
static size_t tags_attrs(char out[][2048], size_t max, const char *text, const char *needle, const char *a,
                         const char *b)
{
	size_t k = 0;
	const char *p = text;
	while ((p = strstr(p, needle)) != NULL && k < max) {
		char va[1024], vb[1024] = "";
		attr_of(va, sizeof va, p, a);
		if (b)
			attr_of(vb, sizeof vb, p, b);
		snprintf(out[k++], 2048, "%s|%s", va, vb);
		p += strlen(needle);
	}
	return k;
}

static int rgb_distance(const char *x, const char *y)
{
	unsigned r1, g1, b1, r2, g2, b2;
	assert_int_equal(sscanf(x, "#%2x%2x%2x", &r1, &g1, &b1), 3);
	assert_int_equal(sscanf(y, "#%2x%2x%2x", &r2, &g2, &b2), 3);
	return (int)((r1 - r2) * (r1 - r2) + (g1 - g2) * (g1 - g2) + (b1 - b2) * (b1 - b2));
}

/* The line chart as Chromium built it: one legend key per series, no two
** alike (colour and dash), colours far apart (at least 8 of them, no two
** closer than 60 in RGB), and no two lines drawn on the same points, even
** where domains have the same scores (fill_store gives 16 domains only 3
** different courses). */
static void check_lines_told_apart(const char *dom, size_t nseries)
{
	static char keys[64][2048], lines[64][2048];
	char strokes[64][16];
	size_t nk = tags_attrs(keys, 64, dom, "<line class=\"key\"", "stroke", "stroke-dasharray");
	size_t nl = tags_attrs(lines, 64, dom, "<polyline", "points", NULL), i, j, ns = 0;
	assert_int_equal(nk, nseries);
	assert_int_equal(nl, nseries);
	for (i = 0; i < nk; i++) {
		char *bar = strchr(keys[i], '|');
		int seen = 0;
		for (j = 0; j < i; j++)
			if (!strcmp(keys[i], keys[j]))
				fail_msg("legend keys %zu and %zu look the same: %s", j, i, keys[i]);
		for (j = 0; j < nl && j < i; j++)
			if (!strcmp(lines[i], lines[j]))
				fail_msg("lines %zu and %zu lie on top of each other", j, i);
		*bar = '\0';
		for (j = 0; j < ns; j++)
			seen |= !strcmp(strokes[j], keys[i]);
		if (!seen)
			snprintf(strokes[ns++], sizeof strokes[0], "%.15s", keys[i]);
	}
	assert_true(ns >= 8);
	for (i = 0; i < ns; i++)
		for (j = 0; j < i; j++)
			if (rgb_distance(strokes[i], strokes[j]) < 60 * 60)
				fail_msg("legend colours %s and %s are hard to tell apart", strokes[i], strokes[j]);
}

static void check_page(const char *dir, const char *name, long blank, const char *const *needles)
{
	char html[1024], png[1024], dom[1024];
	size_t len = 0, i;
	unsigned w = 0, h = 0;
	unsigned char *text;
	long size;
	snprintf(html, sizeof html, "%s/%s.html", dir, name);
	snprintf(png, sizeof png, "%s/%s.png", dir, name);
	snprintf(dom, sizeof dom, "%s/%s.dom.html", dir, name);
	{
		char what[1100];
		snprintf(what, sizeof what, "--screenshot=%s", png);
		assert_int_equal(chromium(dir, what, html, "/dev/null"), 0);
	}
	size = file_size(png);
	print_message("%s: screenshot %s (%ld bytes; an empty page: %ld)\n", name, png, size, blank);
	assert_true(png_size(png, &w, &h));
	assert_int_equal(w, 1200);
	assert_int_equal(h, 1600);
	assert_true(size > 4 * blank);
	assert_int_equal(chromium(dir, "--dump-dom", html, dom), 0);
	text = veld_test_read_file(dom, &len);
	assert_non_null(text);
	for (i = 0; needles[i]; i++)
		if (!strstr((const char *)text, needles[i]))
			fail_msg("%s: the DOM lacks %s", name, needles[i]);
	assert_null(strstr((const char *)text, "<script>alert"));
	if (!strcmp(name, "evolutie"))
		check_lines_told_apart((const char *)text, 16);
	free(text);
}

static void test_html_reports_render_in_chromium(void **state)
{
	static const char *const jaar[] = {"<h1>Jaarcijfers 2017</h1>", "<h2>Aard van de contacten</h2>",
	                                   "<svg", "<rect", "7,", NULL};
	static const char *const evo[] = {"<h1>Evolutie van de sociale balans</h1>",
	                                  "&lt;script&gt;alert(\"x\")&lt;/script&gt; Janssens", "<svg",
	                                  "<polyline", "<circle", NULL};
	veld_store_options o;
	veld_os os = *veld_os_default();
	veld_store *s = NULL;
	char *dir, *store, evo_case[VELD_IDSIZE], params[128], path[1024], png[1024], *blank_html;
	long blank;
	(void)state;
	if (!have_chromium()) {
		print_message("chromium is not installed (tools/setup installs it): skipping the browser test\n");
		skip();
	}
	dir = veld_test_tmpdir("report-html");
	store = veld_test_path(dir, "store");
	os.xFsync = no_fsync;
	veld_test_fast_options(&o);
	o.os = &os;
	o.device_role = "office";
	if (veld_store_create(&s, store, VELD_TEST_PASS, strlen(VELD_TEST_PASS), &o))
		fail_msg("create: %s", veld_errmsg(s));
	fill_store(s, evo_case);
	snprintf(path, sizeof path, "%s/jaarcijfers.html", dir);
	write_report(s, "jaarcijfers", "{\"year\": 2017}", path);
	snprintf(params, sizeof params, "{\"case\": \"%s\"}", evo_case);
	snprintf(path, sizeof path, "%s/evolutie.html", dir);
	write_report(s, "evolutie", params, path);
	veld_store_close(s);

	/* an empty page of the same size, for comparison */
	blank_html = veld_test_path(dir, "blank.html");
	assert_int_equal(veld_test_write_file(blank_html, "<!DOCTYPE html><html></html>", 28), 0);
	snprintf(png, sizeof png, "--screenshot=%s/blank.png", dir);
	assert_int_equal(chromium(dir, png, blank_html, "/dev/null"), 0);
	snprintf(png, sizeof png, "%s/blank.png", dir);
	blank = file_size(png);
	assert_true(blank > 0);

	check_page(dir, "jaarcijfers", blank, jaar);
	check_page(dir, "evolutie", blank, evo);
	/* the store is gone; the pages and screenshots stay for people to see */
	veld_test_rmtree(store);
	free(blank_html);
	free(store);
	free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_html_reports_render_in_chromium),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
