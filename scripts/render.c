/*
** render.c — a report's result as text, CSV, JSON or one HTML page.
**
** A report script returns plain data (report_api.c converts it to JSON):
**   {title = "...", subtitle = "...", byline = "...", sections = {
**     {title = "...", paragraphs = {"..."},
**      table = {columns = {"Plaats", {label = "%", type = "pct"}, ...},
**               rows = {{"Huisbezoek", 1197, 51.4}, ...}},
**      chart = {type = "bar" | "line", title = "...", unit = "%",
**               labels = {"..."}, series = {{name = "2017", values = {...}}}}}}}
** This file checks that shape (a mistake is the author's, reported as
** "name.lua: result: sections[2].table.rows[3]: ...") and renders it.  It
** owns every byte of the output: nothing of the script is trusted, every
** string is escaped for the format it lands in.
**
** Numbers.  Column types say how a number reads: "count" (2.329), "int"
** (2017), "pct" (7,4%), "number" (decimals, default 1), "delta" (+1, -2),
** "date" (YYYY-MM-DD shown as 31/12/2017), "text" (the default).  Text and
** HTML are for people and Dutch: decimal comma, thousands dot.  CSV and
** JSON are for machines: plain numbers with a decimal point, no thousands
** separator, no % sign.
**
** Formats.  text: headings underlined, paragraphs wrapped at 78 columns,
** tables aligned, bar charts drawn with '#'.  csv: RFC 4180 (CRLF, fields
** with a comma, quote or line break quoted, quotes doubled), one table per
** section after a row with the section's title, tables separated by an
** empty line.  json: the result as the script returned it, keys sorted,
** 2-space indent, reals with 15 significant digits (7.4, not
** 7.4000000000000004).  html: one self-contained page (inline CSS, charts
** as inline SVG, a Content-Security-Policy that forbids every fetch and
** script), Dutch headings as the report gives them: render_html.c.
**
** This file owns the output buffer (veld_render_out, on core's veld_buf),
** the cells and the chart helpers both files use, and the entry
** veld_report__render.  Renderers only append to the output; running out
** of memory is seen once, at the end.
*/
#include "scripts.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { F_TEXT, F_CSV, F_JSON, F_HTML };
enum { C_TEXT, C_COUNT, C_INT, C_PCT, C_NUMBER, C_DELTA, C_DATE };

#define TEXT_WIDTH 78
#define VELD_RENDER_COLS   64
#define BAR_WIDTH  40

/* floor() without libm (the library links no libm of its own). */
double veld_render__floor(double x)
{
	double t;
	if (!(x > -4503599627370496.0 && x < 4503599627370496.0))
		return x; /* already integral, or not a number */
	t = (double)(long long)x;
	return t > x ? t - 1 : t;
}

static double fabs_d(double x)
{
	return x < 0 ? -x : x;
}

/* ---- the output ------------------------------------------------------------ */

void veld_render__add(veld_render_out *o, const char *s, size_t n)
{
	if (o->oom || o->over)
		return;
	if (n >= o->max - o->b.n) { /* b.n < max: the NUL fits */
		o->over = 1;
		return;
	}
	if (veld_buf__room(&o->b, n + 1)) {
		o->oom = 1;
		return;
	}
	memcpy(o->b.p + o->b.n, s, n);
	o->b.n += n;
	o->b.p[o->b.n] = '\0';
}

void veld_render__str(veld_render_out *o, const char *s)
{
	veld_render__add(o, s, strlen(s));
}

void veld_render__fmt(veld_render_out *o, const char *fmt, ...)
{
	char tmp[512];
	va_list ap;
	int n;
	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof tmp, fmt, ap);
	va_end(ap);
	if (n > 0)
		veld_render__add(o, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

static void text_rep(veld_render_out *b, const char *s, size_t times)
{
	size_t i;
	for (i = 0; i < times; i++)
		veld_render__str(b, s);
}

size_t veld_render__width(const char *s)
{
	size_t w = 0;
	for (; *s; s++)
		w += ((unsigned char)*s & 0xC0) != 0x80;
	return w;
}

/* ---- Dutch numbers ------------------------------------------------------------ */

size_t veld_report__fmt_count(char *buf, size_t n, long long v)
{
	char digits[32];
	size_t nd, i, o = 0;
	unsigned long long u = v < 0 ? 0ull - (unsigned long long)v : (unsigned long long)v;
	nd = (size_t)snprintf(digits, sizeof digits, "%llu", u);
	if (n < 2)
		return 0;
	if (v < 0 && o + 1 < n)
		buf[o++] = '-';
	for (i = 0; i < nd && o + 2 < n; i++) {
		if (i > 0 && (nd - i) % 3 == 0)
			buf[o++] = '.';
		buf[o++] = digits[i];
	}
	buf[o] = '\0';
	return o;
}

size_t veld_report__fmt_decimal(char *buf, size_t n, double v, int decimals, int comma)
{
	char tmp[400], ibuf[64];
	const char *digits, *dot;
	int neg, zero = 1;
	const char *p;
	if (v != v || v > 1e300 || v < -1e300)
		v = 0;
	if (decimals < 0)
		decimals = 0;
	if (decimals > 6)
		decimals = 6;
	snprintf(tmp, sizeof tmp, "%.*f", decimals, v);
	neg = tmp[0] == '-';
	digits = tmp + neg;
	for (p = digits; *p; p++)
		if (*p != '0' && *p != '.')
			zero = 0;
	if (zero)
		neg = 0; /* -0,0 reads as 0,0 */
	dot = strchr(digits, '.');
	if (!comma) {
		snprintf(buf, n, "%s%s", neg ? "-" : "", digits);
		return strlen(buf);
	}
	{
		size_t k = dot ? (size_t)(dot - digits) : strlen(digits);
		if (k > 18) {
			snprintf(buf, n, "%s%s", neg ? "-" : "", digits);
		} else {
			char intpart[24];
			memcpy(intpart, digits, k);
			intpart[k] = '\0';
			veld_report__fmt_count(ibuf, sizeof ibuf, strtoll(intpart, NULL, 10));
			snprintf(buf, n, "%s%s%s%s", neg ? "-" : "", ibuf, dot ? "," : "", dot ? dot + 1 : "");
		}
	}
	return strlen(buf);
}

void veld_report__fmt_date(char *buf, size_t n, const char *s, size_t len)
{
	if (len == 10 && s[4] == '-' && s[7] == '-')
		snprintf(buf, n, "%.2s/%.2s/%.4s", s + 8, s + 5, s);
	else
		snprintf(buf, n, "%.*s", (int)(len < 30 ? len : 30), s);
}

int veld_report__format(const char *format)
{
	if (!format || !strcmp(format, "text"))
		return F_TEXT;
	if (!strcmp(format, "csv"))
		return F_CSV;
	if (!strcmp(format, "json"))
		return F_JSON;
	if (!strcmp(format, "html"))
		return F_HTML;
	return -1;
}

/* ---- the shape of a result ---------------------------------------------------- */

static int col_type(const char *t)
{
	static const char *const names[] = {"text", "count", "int", "pct", "number", "delta", "date", NULL};
	int i;
	for (i = 0; names[i]; i++)
		if (!strcmp(t, names[i]))
			return i;
	return -1;
}

static int only_keys(const json_t *o, const char *const *keys, char *bad, size_t n)
{
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)o, k, v)
	{
		int i, ok = 0;
		for (i = 0; keys[i]; i++)
			ok |= !strcmp(k, keys[i]);
		if (!ok) {
			snprintf(bad, n, "%.60s", k);
			return 0;
		}
	}
	return 1;
}

/* A list from a script: an empty Lua table arrives as an empty object. */
static int is_list(const json_t *v)
{
	return json_is_array(v) || (json_is_object(v) && json_object_size(v) == 0);
}

static int is_cell(const json_t *v)
{
	return json_is_string(v) || json_is_number(v) || json_is_null(v) || json_is_boolean(v);
}

/* sections[i].table: columns (texts or {label, type, decimals}) and rows
** of cells, one per column. */
static int check_table(const json_t *tab, size_t i, char *why, size_t n)
{
	static const char *const tab_keys[] = {"columns", "rows", NULL};
	static const char *const col_keys[] = {"label", "type", "decimals", NULL};
	char bad[64];
	size_t j, k;
	json_t *cols, *rows, *row, *s, *v;
	if (!json_is_object(tab) || !only_keys(tab, tab_keys, bad, sizeof bad))
		return snprintf(why, n, "sections[%zu].table needs columns and rows", i + 1), 0;
	cols = json_object_get(tab, "columns");
	rows = json_object_get(tab, "rows");
	if (!json_is_array(cols) || json_array_size(cols) == 0 || json_array_size(cols) > VELD_RENDER_COLS)
		return snprintf(why, n, "sections[%zu].table.columns must list 1 to %d columns", i + 1,
		                VELD_RENDER_COLS), 0;
	json_array_foreach(cols, j, s)
	{
		if (json_is_string(s))
			continue;
		if (!json_is_object(s) || !only_keys(s, col_keys, bad, sizeof bad) ||
		    !json_is_string(json_object_get(s, "label")))
			return snprintf(why, n, "sections[%zu].table.columns[%zu] must be a text or {label, type}",
			                i + 1, j + 1), 0;
		v = json_object_get(s, "type");
		if (v && (!json_is_string(v) || col_type(json_string_value(v)) < 0))
			return snprintf(why, n,
			                "sections[%zu].table.columns[%zu]: type is one of text, count, int, pct, "
			                "number, delta, date", i + 1, j + 1), 0;
		v = json_object_get(s, "decimals");
		if (v && (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 6))
			return snprintf(why, n, "sections[%zu].table.columns[%zu]: decimals is 0 to 6", i + 1,
			                j + 1), 0;
	}
	if (!is_list(rows))
		return snprintf(why, n, "sections[%zu].table.rows must be a list", i + 1), 0;
	json_array_foreach(rows, j, row)
	{
		if (!is_list(row) || json_array_size(row) != json_array_size(cols))
			return snprintf(why, n, "sections[%zu].table.rows[%zu]: %zu cells for %zu columns", i + 1,
			                j + 1, json_is_array(row) ? json_array_size(row) : 0,
			                json_array_size(cols)), 0;
		json_array_foreach(row, k, s) if (!is_cell(s))
			return snprintf(why, n, "sections[%zu].table.rows[%zu][%zu] must be a text or number",
			                i + 1, j + 1, k + 1), 0;
	}
	return 1;
}

/* sections[i].chart: a bar or line chart, one value per label in each
** series. */
static int check_chart(const json_t *chart, size_t i, char *why, size_t n)
{
	static const char *const chart_keys[] = {"type", "title", "unit", "labels", "series", "min", "max", NULL};
	static const char *const ser_keys[] = {"name", "values", NULL};
	char bad[64] = "";
	size_t j, k;
	json_t *labels, *series, *s, *v;
	const char *type;
	if (!json_is_object(chart) || !only_keys(chart, chart_keys, bad, sizeof bad))
		return snprintf(why, n, "sections[%zu].chart: unknown key '%s'", i + 1, bad), 0;
	type = json_string_value(json_object_get(chart, "type"));
	if (!type || (strcmp(type, "bar") && strcmp(type, "line")))
		return snprintf(why, n, "sections[%zu].chart.type is \"bar\" or \"line\"", i + 1), 0;
	labels = json_object_get(chart, "labels");
	series = json_object_get(chart, "series");
	if (!is_list(labels) || json_array_size(labels) > 500)
		return snprintf(why, n, "sections[%zu].chart.labels must be a list", i + 1), 0;
	json_array_foreach(labels, j, s) if (!json_is_string(s))
		return snprintf(why, n, "sections[%zu].chart.labels[%zu] must be a text", i + 1, j + 1), 0;
	if (!json_is_array(series) || json_array_size(series) == 0 || json_array_size(series) > 32)
		return snprintf(why, n, "sections[%zu].chart.series must list 1 to 32 series", i + 1), 0;
	json_array_foreach(series, j, s)
	{
		json_t *vals = json_object_get(s, "values"), *x;
		if (!json_is_object(s) || !only_keys(s, ser_keys, bad, sizeof bad) ||
		    !json_is_string(json_object_get(s, "name")) || !is_list(vals) ||
		    json_array_size(vals) != json_array_size(labels))
			return snprintf(why, n,
			                "sections[%zu].chart.series[%zu] needs a name and one value per label",
			                i + 1, j + 1), 0;
		json_array_foreach(vals, k, x) if (!json_is_number(x) && !json_is_null(x) && !json_is_false(x))
			return snprintf(why, n, "sections[%zu].chart.series[%zu].values[%zu] must be a number "
			                "(false: none)",
			                i + 1, j + 1, k + 1), 0;
	}
	for (k = 0; k < 2; k++) {
		v = json_object_get(chart, k ? "max" : "min");
		if (v && !json_is_number(v))
			return snprintf(why, n, "sections[%zu].chart.%s must be a number", i + 1,
			                k ? "max" : "min"), 0;
	}
	v = json_object_get(chart, "title");
	if (v && !json_is_string(v))
		return snprintf(why, n, "sections[%zu].chart.title must be a text", i + 1), 0;
	v = json_object_get(chart, "unit");
	if (v && !json_is_string(v))
		return snprintf(why, n, "sections[%zu].chart.unit must be a text", i + 1), 0;
	return 1;
}

/* Check the result; on a mistake write "where: what" to `why`. */
static int check_report(const json_t *r, char *why, size_t n)
{
	static const char *const top_keys[] = {"title", "subtitle", "byline", "sections", NULL};
	static const char *const sec_keys[] = {"title", "paragraphs", "table", "chart", NULL};
	char bad[64];
	size_t i, j;
	json_t *secs, *sec, *v;
	if (!json_is_object(r))
		return snprintf(why, n, "a report returns a table"), 0;
	if (!only_keys(r, top_keys, bad, sizeof bad))
		return snprintf(why, n, "unknown key '%s'", bad), 0;
	if (!json_is_string(json_object_get(r, "title")))
		return snprintf(why, n, "title must be a text"), 0;
	for (i = 0; i < 2; i++) {
		v = json_object_get(r, i ? "byline" : "subtitle");
		if (v && !json_is_string(v))
			return snprintf(why, n, "%s must be a text", i ? "byline" : "subtitle"), 0;
	}
	secs = json_object_get(r, "sections");
	if (!is_list(secs))
		return snprintf(why, n, "sections must be a list"), 0;
	json_array_foreach(secs, i, sec)
	{
		json_t *s;
		if (!json_is_object(sec))
			return snprintf(why, n, "sections[%zu] must be a table", i + 1), 0;
		if (!only_keys(sec, sec_keys, bad, sizeof bad))
			return snprintf(why, n, "sections[%zu]: unknown key '%s'", i + 1, bad), 0;
		v = json_object_get(sec, "title");
		if (v && !json_is_string(v))
			return snprintf(why, n, "sections[%zu].title must be a text", i + 1), 0;
		v = json_object_get(sec, "paragraphs");
		if (v) {
			if (!is_list(v))
				return snprintf(why, n, "sections[%zu].paragraphs must be a list of texts", i + 1), 0;
			json_array_foreach(v, j, s) if (!json_is_string(s))
				return snprintf(why, n, "sections[%zu].paragraphs[%zu] must be a text", i + 1, j + 1), 0;
		}
		if (json_object_get(sec, "table") && !check_table(json_object_get(sec, "table"), i, why, n))
			return 0;
		if (json_object_get(sec, "chart") && !check_chart(json_object_get(sec, "chart"), i, why, n))
			return 0;
	}
	return 1;
}

/* ---- cells ------------------------------------------------------------------------ */

size_t veld_render__columns(veld_render_col *cols, const json_t *arr)
{
	size_t i;
	json_t *c;
	json_array_foreach(arr, i, c)
	{
		if (i >= VELD_RENDER_COLS)
			break;
		if (json_is_string(c)) {
			cols[i].label = json_string_value(c);
			cols[i].type = C_TEXT;
			cols[i].decimals = 1;
		} else {
			json_t *t = json_object_get(c, "type"), *d = json_object_get(c, "decimals");
			cols[i].label = json_string_value(json_object_get(c, "label"));
			cols[i].type = t ? col_type(json_string_value(t)) : C_TEXT;
			cols[i].decimals = d ? (int)json_integer_value(d) : 1;
		}
	}
	return json_array_size(arr) < VELD_RENDER_COLS ? json_array_size(arr) : VELD_RENDER_COLS;
}

int veld_render__numeric(const veld_render_col *c)
{
	return c->type != C_TEXT && c->type != C_DATE;
}

/* A number as people read it (dutch) or as machines do. */
static void fmt_number(char *buf, size_t n, const json_t *v, const veld_render_col *c, int dutch)
{
	double d = json_number_value(v);
	int is_int = json_is_integer(v) || (fabs_d(d) < 9e15 && d == veld_render__floor(d));
	/* a real is converted only when integral and in range (else undefined) */
	long long ll = json_is_integer(v) ? (long long)json_integer_value(v) : is_int ? (long long)d : 0;
	char tmp[64];
	switch (c->type) {
	case C_COUNT:
		if (is_int && dutch)
			veld_report__fmt_count(buf, n, ll);
		else if (is_int)
			snprintf(buf, n, "%lld", ll);
		else
			veld_report__fmt_decimal(buf, n, d, c->decimals, dutch);
		break;
	case C_INT:
		if (is_int)
			snprintf(buf, n, "%lld", ll);
		else
			veld_report__fmt_decimal(buf, n, d, 0, dutch);
		break;
	case C_PCT:
		veld_report__fmt_decimal(tmp, sizeof tmp, d, c->decimals, dutch);
		snprintf(buf, n, "%s%s", tmp, dutch ? "%" : "");
		break;
	case C_NUMBER:
		veld_report__fmt_decimal(buf, n, d, c->decimals, dutch);
		break;
	case C_DELTA:
		if (is_int)
			snprintf(buf, n, "%s%lld", ll > 0 ? "+" : "", ll);
		else {
			veld_report__fmt_decimal(tmp, sizeof tmp, d, c->decimals, dutch);
			snprintf(buf, n, "%s%s", d > 0 ? "+" : "", tmp);
		}
		break;
	default:
		if (is_int)
			snprintf(buf, n, "%lld", ll);
		else {
			snprintf(tmp, sizeof tmp, "%.15g", d);
			if (dutch) {
				char *p = strchr(tmp, '.');
				if (p)
					*p = ',';
			}
			snprintf(buf, n, "%s", tmp);
		}
		break;
	}
}

/* The cell's text in `small` or, for strings, a pointer to the string. */
const char *veld_render__cell(char *small, size_t n, const json_t *v, const veld_render_col *c, int dutch)
{
	if (json_is_string(v)) {
		if (c->type == C_DATE && dutch) {
			veld_report__fmt_date(small, n, json_string_value(v), json_string_length(v));
			return small;
		}
		return json_string_value(v);
	}
	if (json_is_number(v)) {
		fmt_number(small, n, v, c, dutch);
		return small;
	}
	if (json_is_boolean(v))
		return dutch ? (json_is_true(v) ? "ja" : "nee") : (json_is_true(v) ? "true" : "false");
	return dutch ? "–" : "";
}

/* ---- text ---------------------------------------------------------------------------- */

static void text_heading(veld_render_out *b, const char *s, const char *rule)
{
	veld_render__str(b, s);
	veld_render__str(b, "\n");
	text_rep(b, rule, veld_render__width(s));
	veld_render__str(b, "\n\n");
}

/* Paragraph wrapped at TEXT_WIDTH on spaces (long words run over). */
static void text_para(veld_render_out *b, const char *s)
{
	size_t col = 0;
	while (*s) {
		const char *w = s;
		size_t len, wid;
		char word[1024];
		while (*s && *s != ' ' && *s != '\n')
			s++;
		len = (size_t)(s - w);
		if (len >= sizeof word)
			len = sizeof word - 1;
		memcpy(word, w, len);
		word[len] = '\0';
		wid = veld_render__width(word);
		if (col > 0 && col + 1 + wid > TEXT_WIDTH) {
			veld_render__str(b, "\n");
			col = 0;
		} else if (col > 0) {
			veld_render__str(b, " ");
			col++;
		}
		veld_render__add(b, w, (size_t)(s - w));
		col += wid;
		if (*s == '\n') {
			veld_render__str(b, "\n");
			col = 0;
		}
		while (*s == ' ' || *s == '\n')
			s++;
	}
	veld_render__str(b, "\n\n");
}

/* A cell padded to `width`; `last` cells get no trailing spaces. */
static void text_cell(veld_render_out *b, const char *s, size_t width, int right, int last)
{
	size_t w = veld_render__width(s);
	if (right)
		text_rep(b, " ", width > w ? width - w : 0);
	veld_render__str(b, s);
	if (!right && !last)
		text_rep(b, " ", width > w ? width - w : 0);
}

static void text_table(veld_render_out *b, const json_t *tab)
{
	veld_render_col cols[VELD_RENDER_COLS];
	size_t widths[VELD_RENDER_COLS], nc = veld_render__columns(cols, json_object_get(tab, "columns")), i, j;
	json_t *rows = json_object_get(tab, "rows"), *row;
	char small[96];
	for (j = 0; j < nc; j++)
		widths[j] = veld_render__width(cols[j].label);
	json_array_foreach(rows, i, row) for (j = 0; j < nc; j++)
	{
		size_t w = veld_render__width(veld_render__cell(small, sizeof small, json_array_get(row, j), &cols[j], 1));
		if (w > widths[j])
			widths[j] = w;
	}
	for (j = 0; j < nc; j++) {
		if (j)
			veld_render__str(b, "  ");
		text_cell(b, cols[j].label, widths[j], veld_render__numeric(&cols[j]), j + 1 == nc);
	}
	veld_render__str(b, "\n");
	for (j = 0; j < nc; j++) {
		if (j)
			veld_render__str(b, "  ");
		text_rep(b, "-", widths[j]);
	}
	veld_render__str(b, "\n");
	json_array_foreach(rows, i, row)
	{
		for (j = 0; j < nc; j++) {
			if (j)
				veld_render__str(b, "  ");
			text_cell(b, veld_render__cell(small, sizeof small, json_array_get(row, j), &cols[j], 1), widths[j],
			          veld_render__numeric(&cols[j]), j + 1 == nc);
		}
		veld_render__str(b, "\n");
	}
	veld_render__str(b, "\n");
}

/* A value on a chart, as people read it. */
void veld_render__chart_value(char *buf, size_t n, double v, const char *unit)
{
	if (unit && !strcmp(unit, "%")) {
		veld_report__fmt_decimal(buf, n, v, 1, 1);
		strncat(buf, "%", n - strlen(buf) - 1);
	} else if (v == veld_render__floor(v) && fabs_d(v) < 9e15) {
		veld_report__fmt_count(buf, n, (long long)v);
	} else {
		veld_report__fmt_decimal(buf, n, v, 1, 1);
	}
}

double veld_render__series_max(const json_t *series)
{
	size_t i, j;
	json_t *s, *v;
	double m = 0;
	json_array_foreach(series, i, s) json_array_foreach(json_object_get(s, "values"), j, v)
	{
		if (json_is_number(v) && json_number_value(v) > m)
			m = json_number_value(v);
	}
	return m;
}

static void text_chart(veld_render_out *b, const json_t *chart)
{
	json_t *labels = json_object_get(chart, "labels"), *series = json_object_get(chart, "series"), *s;
	const char *unit = json_string_value(json_object_get(chart, "unit"));
	const char *title = json_string_value(json_object_get(chart, "title"));
	size_t i, j, lw = 0, sw = 0, ns = json_array_size(series);
	double max = veld_render__series_max(series);
	char val[64];
	if (title) {
		veld_render__str(b, title);
		veld_render__str(b, "\n\n");
	}
	if (strcmp(json_string_value(json_object_get(chart, "type")), "bar")) {
		/* a line chart needs a page; its figures are in the tables */
		veld_render__str(b, "(lijngrafiek: zie de HTML-versie van dit rapport)\n\n");
		return;
	}
	for (i = 0; i < json_array_size(labels); i++)
		if (veld_render__width(json_string_value(json_array_get(labels, i))) > lw)
			lw = veld_render__width(json_string_value(json_array_get(labels, i)));
	json_array_foreach(series, j, s) if (ns > 1 && veld_render__width(json_string_value(json_object_get(s, "name"))) > sw)
		sw = veld_render__width(json_string_value(json_object_get(s, "name")));
	for (i = 0; i < json_array_size(labels); i++) {
		json_array_foreach(series, j, s)
		{
			json_t *v = json_array_get(json_object_get(s, "values"), i);
			double d = json_is_number(v) ? json_number_value(v) : 0;
			size_t bars = max > 0 && d > 0 ? (size_t)(d / max * BAR_WIDTH + 0.5) : 0;
			text_cell(b, j == 0 ? json_string_value(json_array_get(labels, i)) : "", lw, 0, 0);
			if (ns > 1) {
				veld_render__str(b, "  ");
				text_cell(b, json_string_value(json_object_get(s, "name")), sw, 0, 0);
			}
			veld_render__str(b, "  ");
			text_rep(b, "#", bars);
			if (json_is_number(v)) {
				veld_render__chart_value(val, sizeof val, d, unit);
				veld_render__fmt(b, " %s", val);
			}
			veld_render__str(b, "\n");
		}
	}
	veld_render__str(b, "\n");
}

static void render_text(veld_render_out *b, const json_t *r)
{
	size_t i;
	json_t *sec, *p;
	text_heading(b, json_string_value(json_object_get(r, "title")), "=");
	if (json_object_get(r, "subtitle"))
		text_para(b, json_string_value(json_object_get(r, "subtitle")));
	if (json_object_get(r, "byline"))
		text_para(b, json_string_value(json_object_get(r, "byline")));
	json_array_foreach(json_object_get(r, "sections"), i, sec)
	{
		size_t j;
		if (json_object_get(sec, "title"))
			text_heading(b, json_string_value(json_object_get(sec, "title")), "-");
		json_array_foreach(json_object_get(sec, "paragraphs"), j, p) text_para(b, json_string_value(p));
		if (json_object_get(sec, "table"))
			text_table(b, json_object_get(sec, "table"));
		if (json_object_get(sec, "chart"))
			text_chart(b, json_object_get(sec, "chart"));
	}
	/* one trailing newline */
	while (b->b.n > 1 && b->b.p[b->b.n - 1] == '\n' && b->b.p[b->b.n - 2] == '\n')
		b->b.p[--b->b.n] = '\0';
}

/* ---- CSV (RFC 4180) ----------------------------------------------------------------------- */

static void csv_field(veld_render_out *b, const char *s)
{
	if (strpbrk(s, ",\"\r\n")) {
		veld_render__str(b, "\"");
		for (; *s; s++)
			veld_render__add(b, *s == '"' ? "\"\"" : s, *s == '"' ? 2 : 1);
		veld_render__str(b, "\"");
	} else {
		veld_render__str(b, s);
	}
}

static void render_csv(veld_render_out *b, const json_t *r)
{
	size_t i, j, k, tables = 0;
	json_t *sec, *row;
	char small[96];
	json_array_foreach(json_object_get(r, "sections"), i, sec)
	{
		json_t *tab = json_object_get(sec, "table");
		veld_render_col cols[VELD_RENDER_COLS];
		size_t nc;
		if (!tab)
			continue;
		if (tables++)
			veld_render__str(b, "\r\n");
		nc = veld_render__columns(cols, json_object_get(tab, "columns"));
		csv_field(b, json_object_get(sec, "title") ? json_string_value(json_object_get(sec, "title"))
		                                           : json_string_value(json_object_get(r, "title")));
		veld_render__str(b, "\r\n");
		for (j = 0; j < nc; j++) {
			if (j)
				veld_render__str(b, ",");
			csv_field(b, cols[j].label);
		}
		veld_render__str(b, "\r\n");
		json_array_foreach(json_object_get(tab, "rows"), j, row)
		{
			for (k = 0; k < nc; k++) {
				if (k)
					veld_render__str(b, ",");
				csv_field(b, veld_render__cell(small, sizeof small, json_array_get(row, k), &cols[k], 0));
			}
			veld_render__str(b, "\r\n");
		}
	}
}

/* ---- entry ------------------------------------------------------------------------------------ */

/* json_dump_callback's writer: into the bounded output. */
static int json_out(const char *buf, size_t size, void *data)
{
	veld_render_out *b = data;
	veld_render__add(b, buf, size);
	return b->oom || b->over ? -1 : 0;
}

int veld_report__render(char **out, const json_t *report, const char *format, const char *chunk,
                        size_t max, veld_err *err)
{
	veld_render_out b = {{NULL, 0, 0}, 0, 0, 0};
	char why[256];
	int f = veld_report__format(format), rc = VELD_OK;
	*out = NULL;
	b.max = max ? max : VELD_REPORT_OUTPUT_MAX;
	if (f < 0)
		return veld_err__set(err, VELD_EINVALID, "unknown report format '%.20s' (text, csv, json, html)",
		                     format);
	if (!check_report(report, why, sizeof why))
		return veld_err__set(err, VELD_EINVALID, "%s: result: %s", chunk, why);
	switch (f) {
	case F_TEXT:
		render_text(&b, report);
		break;
	case F_CSV:
		render_csv(&b, report);
		break;
	case F_JSON:
		/* written as it is dumped: the bound holds as the text grows */
		if (json_dump_callback(report, json_out, &b, JSON_SORT_KEYS | JSON_INDENT(2) | JSON_REAL_PRECISION(15)))
			b.oom = !b.over;
		veld_render__str(&b, "\n");
		break;
	default:
		veld_render__html(&b, report);
		break;
	}
	if (!b.oom && !b.b.p)
		veld_render__str(&b, "");
	if (b.oom || b.over) {
		char size[32];
		free(b.b.p);
		if (b.over)
			return veld_err__set(err, VELD_EINVALID, "%s: output exceeds %s", chunk, veld_sandbox__size(size, b.max));
		return veld_err__set(err, VELD_ERROR, "out of memory");
	}
	*out = (char *)b.b.p;
	return rc;
}
