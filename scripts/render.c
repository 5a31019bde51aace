/*
** render.c — a report's result as text, CSV, JSON or one HTML page.
**
** A report script returns plain data (report.c converts it to JSON):
**   {title = "...", subtitle = "...", sections = {
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
** script), Dutch headings as the report gives them.
*/
#include "scripts.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { F_TEXT, F_CSV, F_JSON, F_HTML };
enum { C_TEXT, C_COUNT, C_INT, C_PCT, C_NUMBER, C_DELTA, C_DATE };

#define TEXT_WIDTH 78
#define MAX_COLS   64
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

/* ---- a growing buffer ------------------------------------------------------ */

typedef struct sbuf {
	char *p;
	size_t n, cap;
	int oom;
} sbuf;

static void sb_add(sbuf *b, const char *s, size_t n)
{
	if (b->oom)
		return;
	if (b->n + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		char *p;
		while (cap < b->n + n + 1)
			cap *= 2;
		p = realloc(b->p, cap);
		if (!p) {
			b->oom = 1;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->n, s, n);
	b->n += n;
	b->p[b->n] = '\0';
}

static void sb_str(sbuf *b, const char *s)
{
	sb_add(b, s, strlen(s));
}

static void sb_fmt(sbuf *b, const char *fmt, ...)
#if defined(__GNUC__)
	__attribute__((format(printf, 2, 3)))
#endif
	;

static void sb_fmt(sbuf *b, const char *fmt, ...)
{
	char tmp[512];
	va_list ap;
	int n;
	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof tmp, fmt, ap);
	va_end(ap);
	if (n > 0)
		sb_add(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

static void sb_rep(sbuf *b, const char *s, size_t times)
{
	size_t i;
	for (i = 0; i < times; i++)
		sb_str(b, s);
}

/* Characters shown (UTF-8 code points). */
static size_t width_of(const char *s)
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

/* Check the result; on a mistake write "where: what" to `why`. */
static int check_report(const json_t *r, char *why, size_t n)
{
	static const char *const top_keys[] = {"title", "subtitle", "sections", NULL};
	static const char *const sec_keys[] = {"title", "paragraphs", "table", "chart", NULL};
	static const char *const tab_keys[] = {"columns", "rows", NULL};
	static const char *const col_keys[] = {"label", "type", "decimals", NULL};
	static const char *const chart_keys[] = {"type", "title", "unit", "labels", "series", "min", "max", NULL};
	static const char *const ser_keys[] = {"name", "values", NULL};
	char bad[64];
	size_t i, j, k;
	json_t *secs, *sec, *v;
	if (!json_is_object(r))
		return snprintf(why, n, "a report returns a table"), 0;
	if (!only_keys(r, top_keys, bad, sizeof bad))
		return snprintf(why, n, "unknown key '%s'", bad), 0;
	if (!json_is_string(json_object_get(r, "title")))
		return snprintf(why, n, "title must be a text"), 0;
	if (json_object_get(r, "subtitle") && !json_is_string(json_object_get(r, "subtitle")))
		return snprintf(why, n, "subtitle must be a text"), 0;
	secs = json_object_get(r, "sections");
	if (!is_list(secs))
		return snprintf(why, n, "sections must be a list"), 0;
	json_array_foreach(secs, i, sec)
	{
		json_t *tab, *chart, *cols, *rows, *row, *labels, *series, *s;
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
		tab = json_object_get(sec, "table");
		if (tab) {
			if (!json_is_object(tab) || !only_keys(tab, tab_keys, bad, sizeof bad))
				return snprintf(why, n, "sections[%zu].table needs columns and rows", i + 1), 0;
			cols = json_object_get(tab, "columns");
			rows = json_object_get(tab, "rows");
			if (!json_is_array(cols) || json_array_size(cols) == 0 || json_array_size(cols) > MAX_COLS)
				return snprintf(why, n, "sections[%zu].table.columns must list 1 to %d columns", i + 1,
				                MAX_COLS), 0;
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
		}
		chart = json_object_get(sec, "chart");
		if (chart) {
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
		}
	}
	return 1;
}

/* ---- cells ------------------------------------------------------------------------ */

typedef struct column {
	const char *label;
	int type;
	int decimals;
} column;

static size_t read_columns(column *cols, const json_t *arr)
{
	size_t i;
	json_t *c;
	json_array_foreach(arr, i, c)
	{
		if (i >= MAX_COLS)
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
	return json_array_size(arr) < MAX_COLS ? json_array_size(arr) : MAX_COLS;
}

static int numeric_col(const column *c)
{
	return c->type != C_TEXT && c->type != C_DATE;
}

/* A number as people read it (dutch) or as machines do. */
static void fmt_number(char *buf, size_t n, const json_t *v, const column *c, int dutch)
{
	double d = json_number_value(v);
	int is_int = json_is_integer(v) || (fabs_d(d) < 9e15 && d == veld_render__floor(d));
	long long ll = json_is_integer(v) ? (long long)json_integer_value(v) : (long long)d;
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
static const char *cell_text(char *small, size_t n, const json_t *v, const column *c, int dutch)
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

static void text_heading(sbuf *b, const char *s, const char *rule)
{
	sb_str(b, s);
	sb_str(b, "\n");
	sb_rep(b, rule, width_of(s));
	sb_str(b, "\n\n");
}

/* Paragraph wrapped at TEXT_WIDTH on spaces (long words run over). */
static void text_para(sbuf *b, const char *s)
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
		wid = width_of(word);
		if (col > 0 && col + 1 + wid > TEXT_WIDTH) {
			sb_str(b, "\n");
			col = 0;
		} else if (col > 0) {
			sb_str(b, " ");
			col++;
		}
		sb_add(b, w, (size_t)(s - w));
		col += wid;
		if (*s == '\n') {
			sb_str(b, "\n");
			col = 0;
		}
		while (*s == ' ' || *s == '\n')
			s++;
	}
	sb_str(b, "\n\n");
}

/* A cell padded to `width`; `last` cells get no trailing spaces. */
static void text_cell(sbuf *b, const char *s, size_t width, int right, int last)
{
	size_t w = width_of(s);
	if (right)
		sb_rep(b, " ", width > w ? width - w : 0);
	sb_str(b, s);
	if (!right && !last)
		sb_rep(b, " ", width > w ? width - w : 0);
}

static void text_table(sbuf *b, const json_t *tab)
{
	column cols[MAX_COLS];
	size_t widths[MAX_COLS], nc = read_columns(cols, json_object_get(tab, "columns")), i, j;
	json_t *rows = json_object_get(tab, "rows"), *row;
	char small[96];
	for (j = 0; j < nc; j++)
		widths[j] = width_of(cols[j].label);
	json_array_foreach(rows, i, row) for (j = 0; j < nc; j++)
	{
		size_t w = width_of(cell_text(small, sizeof small, json_array_get(row, j), &cols[j], 1));
		if (w > widths[j])
			widths[j] = w;
	}
	for (j = 0; j < nc; j++) {
		if (j)
			sb_str(b, "  ");
		text_cell(b, cols[j].label, widths[j], numeric_col(&cols[j]), j + 1 == nc);
	}
	sb_str(b, "\n");
	for (j = 0; j < nc; j++) {
		if (j)
			sb_str(b, "  ");
		sb_rep(b, "-", widths[j]);
	}
	sb_str(b, "\n");
	json_array_foreach(rows, i, row)
	{
		for (j = 0; j < nc; j++) {
			if (j)
				sb_str(b, "  ");
			text_cell(b, cell_text(small, sizeof small, json_array_get(row, j), &cols[j], 1), widths[j],
			          numeric_col(&cols[j]), j + 1 == nc);
		}
		sb_str(b, "\n");
	}
	sb_str(b, "\n");
}

/* A value on a chart, as people read it. */
static void chart_value(char *buf, size_t n, double v, const char *unit)
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

static double series_max(const json_t *series)
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

static void text_chart(sbuf *b, const json_t *chart)
{
	json_t *labels = json_object_get(chart, "labels"), *series = json_object_get(chart, "series"), *s;
	const char *unit = json_string_value(json_object_get(chart, "unit"));
	const char *title = json_string_value(json_object_get(chart, "title"));
	size_t i, j, lw = 0, sw = 0, ns = json_array_size(series);
	double max = series_max(series);
	char val[64];
	if (title) {
		sb_str(b, title);
		sb_str(b, "\n\n");
	}
	if (strcmp(json_string_value(json_object_get(chart, "type")), "bar")) {
		/* a line chart needs a page; its figures are in the tables */
		sb_str(b, "(lijngrafiek: zie de HTML-versie van dit rapport)\n\n");
		return;
	}
	for (i = 0; i < json_array_size(labels); i++)
		if (width_of(json_string_value(json_array_get(labels, i))) > lw)
			lw = width_of(json_string_value(json_array_get(labels, i)));
	json_array_foreach(series, j, s) if (ns > 1 && width_of(json_string_value(json_object_get(s, "name"))) > sw)
		sw = width_of(json_string_value(json_object_get(s, "name")));
	for (i = 0; i < json_array_size(labels); i++) {
		json_array_foreach(series, j, s)
		{
			json_t *v = json_array_get(json_object_get(s, "values"), i);
			double d = json_is_number(v) ? json_number_value(v) : 0;
			size_t bars = max > 0 && d > 0 ? (size_t)(d / max * BAR_WIDTH + 0.5) : 0;
			text_cell(b, j == 0 ? json_string_value(json_array_get(labels, i)) : "", lw, 0, 0);
			if (ns > 1) {
				sb_str(b, "  ");
				text_cell(b, json_string_value(json_object_get(s, "name")), sw, 0, 0);
			}
			sb_str(b, "  ");
			sb_rep(b, "#", bars);
			if (json_is_number(v)) {
				chart_value(val, sizeof val, d, unit);
				sb_fmt(b, " %s", val);
			}
			sb_str(b, "\n");
		}
	}
	sb_str(b, "\n");
}

static void render_text(sbuf *b, const json_t *r)
{
	size_t i;
	json_t *sec, *p;
	text_heading(b, json_string_value(json_object_get(r, "title")), "=");
	if (json_object_get(r, "subtitle"))
		text_para(b, json_string_value(json_object_get(r, "subtitle")));
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
	while (b->n > 1 && b->p[b->n - 1] == '\n' && b->p[b->n - 2] == '\n')
		b->p[--b->n] = '\0';
}

/* ---- CSV (RFC 4180) ----------------------------------------------------------------------- */

static void csv_field(sbuf *b, const char *s)
{
	if (strpbrk(s, ",\"\r\n")) {
		sb_str(b, "\"");
		for (; *s; s++)
			sb_add(b, *s == '"' ? "\"\"" : s, *s == '"' ? 2 : 1);
		sb_str(b, "\"");
	} else {
		sb_str(b, s);
	}
}

static void render_csv(sbuf *b, const json_t *r)
{
	size_t i, j, k, tables = 0;
	json_t *sec, *row;
	char small[96];
	json_array_foreach(json_object_get(r, "sections"), i, sec)
	{
		json_t *tab = json_object_get(sec, "table");
		column cols[MAX_COLS];
		size_t nc;
		if (!tab)
			continue;
		if (tables++)
			sb_str(b, "\r\n");
		nc = read_columns(cols, json_object_get(tab, "columns"));
		csv_field(b, json_object_get(sec, "title") ? json_string_value(json_object_get(sec, "title"))
		                                           : json_string_value(json_object_get(r, "title")));
		sb_str(b, "\r\n");
		for (j = 0; j < nc; j++) {
			if (j)
				sb_str(b, ",");
			csv_field(b, cols[j].label);
		}
		sb_str(b, "\r\n");
		json_array_foreach(json_object_get(tab, "rows"), j, row)
		{
			for (k = 0; k < nc; k++) {
				if (k)
					sb_str(b, ",");
				csv_field(b, cell_text(small, sizeof small, json_array_get(row, k), &cols[k], 0));
			}
			sb_str(b, "\r\n");
		}
	}
}

/* ---- HTML ----------------------------------------------------------------------------------- */

static void html_esc(sbuf *b, const char *s)
{
	const char *run = s;
	for (; *s; s++) {
		const char *rep = NULL;
		switch (*s) {
		case '&': rep = "&amp;"; break;
		case '<': rep = "&lt;"; break;
		case '>': rep = "&gt;"; break;
		case '"': rep = "&quot;"; break;
		case '\'': rep = "&#39;"; break;
		default: break;
		}
		if (rep) {
			sb_add(b, run, (size_t)(s - run));
			sb_str(b, rep);
			run = s + 1;
		}
	}
	sb_add(b, run, (size_t)(s - run));
}

static const char *const PALETTE[] = {"#1f5f8b", "#d9822b", "#3a8f5c", "#b8434f", "#7a5ea8", "#8c6d46",
                                      "#c05fa0", "#5f6b73", "#9aa127", "#2aa3b5", "#244a6b", "#e0a458",
                                      "#6bb38a", "#d97a84", "#a793c9", "#b59b7c"};
#define NPALETTE (sizeof PALETTE / sizeof PALETTE[0])

static void svg_text(sbuf *b, double x, double y, const char *anchor, const char *cls, const char *s)
{
	sb_fmt(b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"%s\" class=\"%s\">", x, y, anchor, cls);
	html_esc(b, s);
	sb_str(b, "</text>");
}

static void svg_legend(sbuf *b, const json_t *series, double y, double width)
{
	size_t j;
	json_t *s;
	double x = 10;
	json_array_foreach(series, j, s)
	{
		const char *name = json_string_value(json_object_get(s, "name"));
		double w = 30 + 7.5 * (double)width_of(name);
		if (x + w > width && x > 10) {
			x = 10;
			y += 20;
		}
		sb_fmt(b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"12\" height=\"12\" fill=\"%s\"/>", x, y - 10,
		       PALETTE[j % NPALETTE]);
		svg_text(b, x + 17, y, "start", "lg", name);
		x += w;
	}
}

/* Height the legend takes for `series` at `width`. */
static double legend_height(const json_t *series, double width)
{
	size_t j;
	json_t *s;
	double x = 10, h = 20;
	json_array_foreach(series, j, s)
	{
		double w = 30 + 7.5 * (double)width_of(json_string_value(json_object_get(s, "name")));
		if (x + w > width && x > 10) {
			x = 10;
			h += 20;
		}
		x += w;
	}
	return h;
}

/* Horizontal grouped bars: one group per label, one bar per series. */
static void svg_bar(sbuf *b, const json_t *chart)
{
	json_t *labels = json_object_get(chart, "labels"), *series = json_object_get(chart, "series"), *s;
	const char *unit = json_string_value(json_object_get(chart, "unit"));
	size_t nl = json_array_size(labels), ns = json_array_size(series), i, j;
	double W = 760, left = 200, right = 80, bar = 16, gap = 12;
	double lh = ns > 1 ? legend_height(series, W) + 10 : 0;
	double H = lh + (double)nl * ((double)ns * bar + gap) + 10;
	double max = series_max(series), area = W - left - right;
	char val[64];
	sb_fmt(b, "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart\" viewBox=\"0 0 %.0f %.0f\" "
	          "width=\"%.0f\" height=\"%.0f\" role=\"img\">", W, H, W, H);
	if (ns > 1)
		svg_legend(b, series, 20, W);
	for (i = 0; i < nl; i++) {
		double y0 = lh + (double)i * ((double)ns * bar + gap) + 5;
		svg_text(b, left - 8, y0 + (double)ns * bar / 2 + 4, "end", "lb",
		         json_string_value(json_array_get(labels, i)));
		json_array_foreach(series, j, s)
		{
			json_t *v = json_array_get(json_object_get(s, "values"), i);
			double d = json_is_number(v) ? json_number_value(v) : 0;
			double w = max > 0 && d > 0 ? d / max * area : 0;
			double y = y0 + (double)j * bar;
			sb_fmt(b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\"/>", left, y,
			       w, bar - 2, PALETTE[j % NPALETTE]);
			if (json_is_number(v)) {
				chart_value(val, sizeof val, d, unit);
				svg_text(b, left + w + 5, y + bar - 5, "start", "vl", val);
			}
		}
	}
	sb_fmt(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" class=\"ax\"/>", left, lh, left, H - 5);
	sb_str(b, "</svg>");
}

/* A step for grid lines: 1, 2 or 5 times a power of ten, about 5 lines. */
static double nice_step(double range)
{
	double raw = range / 5, p = 1, f;
	if (!(raw > 0) || raw > 1e300)
		return 1;
	while (p * 10 <= raw)
		p *= 10;
	while (p > raw)
		p /= 10;
	f = raw / p;
	return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * p;
}

static void svg_line(sbuf *b, const json_t *chart)
{
	json_t *labels = json_object_get(chart, "labels"), *series = json_object_get(chart, "series"), *s, *v;
	const char *unit = json_string_value(json_object_get(chart, "unit"));
	size_t nl = json_array_size(labels), i, j;
	double W = 760, L = 50, R = 50, T = 20, plot_h = 260, B = 50;
	double lh = legend_height(series, W), H = T + plot_h + B + lh;
	double lo = 0, hi = 0, step, y;
	int first = 1;
	char val[64];
	json_array_foreach(series, j, s) json_array_foreach(json_object_get(s, "values"), i, v)
	{
		if (!json_is_number(v))
			continue;
		if (first || json_number_value(v) < lo)
			lo = json_number_value(v);
		if (first || json_number_value(v) > hi)
			hi = json_number_value(v);
		first = 0;
	}
	if (lo > 0)
		lo = 0;
	if (json_is_number(json_object_get(chart, "min")))
		lo = json_number_value(json_object_get(chart, "min"));
	if (json_is_number(json_object_get(chart, "max")))
		hi = json_number_value(json_object_get(chart, "max"));
	if (!(hi > lo))
		hi = lo + 1;
	step = nice_step(hi - lo);
	sb_fmt(b, "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart\" viewBox=\"0 0 %.0f %.0f\" "
	          "width=\"%.0f\" height=\"%.0f\" role=\"img\">", W, H, W, H);
#define XPOS(k) (nl > 1 ? L + (W - L - R) * (double)(k) / (double)(nl - 1) : L + (W - L - R) / 2)
#define YPOS(d) (T + plot_h - ((d) - lo) / (hi - lo) * plot_h)
	for (y = -veld_render__floor(-lo / step) * step; y <= hi + step / 1000; y += step) {
		sb_fmt(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" class=\"gr\"/>", L, YPOS(y), W - R,
		       YPOS(y));
		chart_value(val, sizeof val, y, unit);
		svg_text(b, L - 6, YPOS(y) + 4, "end", "vl", val);
	}
	for (i = 0; i < nl; i++)
		svg_text(b, XPOS(i), T + plot_h + 20, "middle", "lb", json_string_value(json_array_get(labels, i)));
	json_array_foreach(series, j, s)
	{
		const char *color = PALETTE[j % NPALETTE];
		int open = 0;
		json_t *vals = json_object_get(s, "values");
		for (i = 0; i < nl; i++) {
			v = json_array_get(vals, i);
			if (!json_is_number(v)) {
				if (open)
					sb_str(b, "\"/>");
				open = 0;
				continue;
			}
			if (!open)
				sb_fmt(b, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2.5\" points=\"", color);
			sb_fmt(b, "%.1f,%.1f ", XPOS(i), YPOS(json_number_value(v)));
			open = 1;
		}
		if (open)
			sb_str(b, "\"/>");
		json_array_foreach(vals, i, v) if (json_is_number(v))
			sb_fmt(b, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"4\" fill=\"%s\"/>", XPOS(i),
			       YPOS(json_number_value(v)), color);
	}
#undef XPOS
#undef YPOS
	svg_legend(b, series, T + plot_h + B + 10, W);
	sb_str(b, "</svg>");
}

static const char HTML_STYLE[] =
	"body{font-family:'DejaVu Sans',Arial,Helvetica,sans-serif;color:#1d2731;margin:0;background:#f6f7f9}"
	"main{max-width:900px;margin:0 auto;padding:24px 32px;background:#fff;min-height:100vh}"
	"h1{font-size:26px;margin:8px 0 4px;color:#163b5c}"
	"p.sub{color:#5f6b73;margin-top:0}"
	"h2{font-size:19px;margin:28px 0 8px;border-bottom:2px solid #d8dee4;padding-bottom:4px;color:#163b5c}"
	"p{line-height:1.45}"
	"table{border-collapse:collapse;margin:10px 0 16px;font-size:14px}"
	"th,td{padding:4px 10px;border-bottom:1px solid #e3e7eb;text-align:left}"
	"th{background:#eef2f5;font-weight:600}"
	"td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}"
	"figure{margin:8px 0 20px}figcaption{font-size:13px;color:#5f6b73}"
	"svg.chart{max-width:100%;height:auto;font-size:12px}"
	"svg .lb{fill:#1d2731}svg .vl{fill:#3d4852;font-size:11px}svg .lg{fill:#1d2731}"
	"svg .ax{stroke:#8895a0}svg .gr{stroke:#e3e7eb}";

static void html_table(sbuf *b, const json_t *tab)
{
	column cols[MAX_COLS];
	size_t nc = read_columns(cols, json_object_get(tab, "columns")), i, j;
	json_t *row;
	char small[96];
	sb_str(b, "<table><thead><tr>");
	for (j = 0; j < nc; j++) {
		sb_str(b, numeric_col(&cols[j]) ? "<th class=\"n\">" : "<th>");
		html_esc(b, cols[j].label);
		sb_str(b, "</th>");
	}
	sb_str(b, "</tr></thead><tbody>\n");
	json_array_foreach(json_object_get(tab, "rows"), i, row)
	{
		sb_str(b, "<tr>");
		for (j = 0; j < nc; j++) {
			sb_str(b, numeric_col(&cols[j]) ? "<td class=\"n\">" : "<td>");
			html_esc(b, cell_text(small, sizeof small, json_array_get(row, j), &cols[j], 1));
			sb_str(b, "</td>");
		}
		sb_str(b, "</tr>\n");
	}
	sb_str(b, "</tbody></table>\n");
}

static void render_html(sbuf *b, const json_t *r)
{
	const char *title = json_string_value(json_object_get(r, "title"));
	size_t i, j;
	json_t *sec, *p;
	sb_str(b, "<!DOCTYPE html>\n<html lang=\"nl\">\n<head>\n<meta charset=\"utf-8\">\n"
	          "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
	          "style-src 'unsafe-inline'\">\n"
	          "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>");
	html_esc(b, title);
	sb_str(b, "</title>\n<style>");
	sb_str(b, HTML_STYLE);
	sb_str(b, "</style>\n</head>\n<body>\n<main>\n<h1>");
	html_esc(b, title);
	sb_str(b, "</h1>\n");
	if (json_object_get(r, "subtitle")) {
		sb_str(b, "<p class=\"sub\">");
		html_esc(b, json_string_value(json_object_get(r, "subtitle")));
		sb_str(b, "</p>\n");
	}
	json_array_foreach(json_object_get(r, "sections"), i, sec)
	{
		json_t *chart = json_object_get(sec, "chart");
		sb_str(b, "<section>\n");
		if (json_object_get(sec, "title")) {
			sb_str(b, "<h2>");
			html_esc(b, json_string_value(json_object_get(sec, "title")));
			sb_str(b, "</h2>\n");
		}
		json_array_foreach(json_object_get(sec, "paragraphs"), j, p)
		{
			sb_str(b, "<p>");
			html_esc(b, json_string_value(p));
			sb_str(b, "</p>\n");
		}
		if (json_object_get(sec, "table"))
			html_table(b, json_object_get(sec, "table"));
		if (chart) {
			sb_str(b, "<figure>");
			if (!strcmp(json_string_value(json_object_get(chart, "type")), "bar"))
				svg_bar(b, chart);
			else
				svg_line(b, chart);
			if (json_object_get(chart, "title")) {
				sb_str(b, "<figcaption>");
				html_esc(b, json_string_value(json_object_get(chart, "title")));
				sb_str(b, "</figcaption>");
			}
			sb_str(b, "</figure>\n");
		}
		sb_str(b, "</section>\n");
	}
	sb_str(b, "</main>\n</body>\n</html>\n");
}

/* ---- entry ------------------------------------------------------------------------------------ */

int veld_report__render(char **out, const json_t *report, const char *format, const char *chunk,
                        veld_err *err)
{
	sbuf b = {NULL, 0, 0, 0};
	char why[256];
	int f = veld_report__format(format), rc = VELD_OK;
	*out = NULL;
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
	case F_JSON: {
		char *j = json_dumps(report, JSON_SORT_KEYS | JSON_INDENT(2) | JSON_REAL_PRECISION(15));
		if (!j) {
			b.oom = 1;
			break;
		}
		sb_str(&b, j);
		sb_str(&b, "\n");
		free(j);
		break;
	}
	default:
		render_html(&b, report);
		break;
	}
	if (!b.oom && !b.p)
		sb_str(&b, "");
	if (b.oom) {
		free(b.p);
		return veld_err__set(err, VELD_ERROR, "out of memory");
	}
	*out = b.p;
	return rc;
}
