/*
** render_html.c — a report's result as one HTML page, charts as inline SVG.
**
** The page is self-contained: inline CSS, charts drawn here as SVG, and a
** Content-Security-Policy that forbids every fetch and script, so a report
** opened from disk or mail cannot reach anything.  Every string of the
** result is escaped for the place it lands in (text or attribute); the
** numbers and the layout are this file's own.  Headings are Dutch as the
** report gives them, numbers as people read them (decimal comma).
**
** render.c checked the result's shape before it calls veld_render__html,
** and owns the buffer, the cells and the chart helpers this file uses.
** This file must not allocate anything but the output.
*/
#include "scripts.h"

#include <string.h>

/* ---- HTML ----------------------------------------------------------------------------------- */

static void html_esc(veld_render_out *b, const char *s)
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
			veld_render__add(b, run, (size_t)(s - run));
			veld_render__str(b, rep);
			run = s + 1;
		}
	}
	veld_render__add(b, run, (size_t)(s - run));
}

/* Series colours that can be told apart, also by most colour-blind readers
** (Okabe and Ito's palette, its yellow swapped for a brown that reads on
** white).  Past eight series the colours repeat with another dash pattern:
** series j is drawn in colour j % 8 with dash (j + j / 8) % 4, so no two of
** the 32 series a chart may have (render.c) look the same; line charts add
** a marker shape per series on top. */
static const char *const PALETTE[] = {"#0072b2", "#d55e00", "#009e73", "#cc79a7",
                                      "#e69f00", "#56b4e9", "#1d2731", "#8c564b"};
#define NPALETTE (sizeof PALETTE / sizeof PALETTE[0])
static const char *const DASHES[] = {"", " stroke-dasharray=\"8 4\"", " stroke-dasharray=\"2 3\"",
                                     " stroke-dasharray=\"10 3 2 3\""};
#define NDASHES (sizeof DASHES / sizeof DASHES[0])

static const char *colour(size_t j)
{
	return PALETTE[j % NPALETTE];
}

static const char *dash(size_t j)
{
	return DASHES[(j + j / NPALETTE) % NDASHES];
}

static void svg_text(veld_render_out *b, double x, double y, const char *anchor, const char *cls, const char *s)
{
	veld_render__fmt(b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"%s\" class=\"%s\">", x, y, anchor, cls);
	html_esc(b, s);
	veld_render__str(b, "</text>");
}

/* The marker of series j at (x, y): a circle, square, triangle or diamond. */
static void svg_marker(veld_render_out *b, size_t j, double x, double y)
{
	switch (j % 4) {
	case 0:
		veld_render__fmt(b, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"4\" fill=\"%s\"/>", x, y, colour(j));
		break;
	case 1:
		veld_render__fmt(b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"8\" height=\"8\" fill=\"%s\"/>", x - 4, y - 4,
		                 colour(j));
		break;
	case 2:
		veld_render__fmt(b, "<polygon points=\"%.1f,%.1f %.1f,%.1f %.1f,%.1f\" fill=\"%s\"/>", x, y - 5, x + 5,
		                 y + 4, x - 5, y + 4, colour(j));
		break;
	default:
		veld_render__fmt(b, "<polygon points=\"%.1f,%.1f %.1f,%.1f %.1f,%.1f %.1f,%.1f\" fill=\"%s\"/>", x,
		                 y - 5, x + 5, y, x, y + 5, x - 5, y, colour(j));
		break;
	}
}

/* The legend of `series` from `y` on, wrapped at `width` (b NULL: only
** measured); returns the height it takes.  A bar chart's key is a
** square of the colour, a line chart's a stretch of the line (colour and
** dash) with its marker: class "key" on each, one per series. */
static double svg_legend(veld_render_out *b, const json_t *series, double y, double width, int lines)
{
	size_t j;
	json_t *s;
	double x = 10, h = 20, key = lines ? 34 : 12;
	json_array_foreach(series, j, s)
	{
		const char *name = json_string_value(json_object_get(s, "name"));
		double w = key + 18 + 7.5 * (double)veld_render__width(name);
		if (x + w > width && x > 10) {
			x = 10;
			y += 20;
			h += 20;
		}
		if (b && lines) {
			veld_render__fmt(b, "<line class=\"key\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" "
			                 "stroke=\"%s\" stroke-width=\"2.5\"%s/>", x, y - 4, x + key, y - 4, colour(j), dash(j));
			svg_marker(b, j, x + key / 2, y - 4);
		} else if (b) {
			veld_render__fmt(b, "<rect class=\"key\" x=\"%.1f\" y=\"%.1f\" width=\"12\" height=\"12\" fill=\"%s\"/>",
			                 x, y - 10, colour(j));
		}
		if (b)
			svg_text(b, x + key + 5, y, "start", "lg", name);
		x += w;
	}
	return h;
}

/* Horizontal grouped bars: one group per label, one bar per series. */
static void svg_bar(veld_render_out *b, const json_t *chart)
{
	json_t *labels = json_object_get(chart, "labels"), *series = json_object_get(chart, "series"), *s;
	const char *unit = json_string_value(json_object_get(chart, "unit"));
	size_t nl = json_array_size(labels), ns = json_array_size(series), i, j;
	double W = 760, left = 200, right = 80, bar = 16, gap = 12;
	double lh = ns > 1 ? svg_legend(NULL, series, 0, W, 0) + 10 : 0;
	double H = lh + (double)nl * ((double)ns * bar + gap) + 10;
	double max = veld_render__series_max(series), area = W - left - right;
	char val[64];
	veld_render__fmt(b, "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart\" viewBox=\"0 0 %.0f %.0f\" "
	                 "width=\"%.0f\" height=\"%.0f\" role=\"img\">", W, H, W, H);
	if (ns > 1)
		svg_legend(b, series, 20, W, 0);
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
			veld_render__fmt(b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\"/>", left, y,
			                 w, bar - 2, colour(j));
			if (json_is_number(v)) {
				veld_render__chart_value(val, sizeof val, d, unit);
				svg_text(b, left + w + 5, y + bar - 5, "start", "vl", val);
			}
		}
	}
	veld_render__fmt(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" class=\"ax\"/>", left, lh, left, H - 5);
	veld_render__str(b, "</svg>");
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

/* Where series j's point at label i is drawn, in pixels off its value:
** series that share a value there (sixteen domains all scored 4) are
** spread around it, in series order, so every line stays visible; the
** spread stays within DODGE_MAX pixels whatever their number. */
#define DODGE_STEP 5.0
#define DODGE_MAX 36.0
static double dodge(const json_t *series, size_t j, size_t i, double v)
{
	size_t m, k = 0, r = 0;
	json_t *s;
	double step;
	json_array_foreach(series, m, s)
	{
		json_t *w = json_array_get(json_object_get(s, "values"), i);
		if (json_is_number(w) && json_number_value(w) == v) {
			k++;
			r += m < j;
		}
	}
	if (k < 2)
		return 0;
	step = DODGE_MAX / (double)(k - 1) < DODGE_STEP ? DODGE_MAX / (double)(k - 1) : DODGE_STEP;
	return ((double)r - (double)(k - 1) / 2) * step;
}

/* The axis of a line chart: lowest and highest value (or the chart's
** min and max). */
static void line_range(double *lo, double *hi, const json_t *chart)
{
	json_t *s, *v;
	size_t i, j;
	int first = 1;
	*lo = *hi = 0;
	json_array_foreach(json_object_get(chart, "series"), j, s) json_array_foreach(json_object_get(s, "values"), i, v)
	{
		if (!json_is_number(v))
			continue;
		if (first || json_number_value(v) < *lo)
			*lo = json_number_value(v);
		if (first || json_number_value(v) > *hi)
			*hi = json_number_value(v);
		first = 0;
	}
	if (*lo > 0)
		*lo = 0;
	if (json_is_number(json_object_get(chart, "min")))
		*lo = json_number_value(json_object_get(chart, "min"));
	if (json_is_number(json_object_get(chart, "max")))
		*hi = json_number_value(json_object_get(chart, "max"));
	if (!(*hi > *lo))
		*hi = *lo + 1;
}

/* One line per series: colour, dash and marker its own (svg_legend), a
** gap where a value is missing, points that coincide spread (dodge). */
static void svg_line(veld_render_out *b, const json_t *chart)
{
	json_t *labels = json_object_get(chart, "labels"), *series = json_object_get(chart, "series"), *s, *v;
	const char *unit = json_string_value(json_object_get(chart, "unit"));
	size_t nl = json_array_size(labels), i, j;
	double W = 760, L = 50, R = 50, T = 20, plot_h = 260, B = 50;
	double lh = svg_legend(NULL, series, 0, W, 1), H = T + plot_h + B + lh;
	double lo, hi, step, y;
	char val[64];
	line_range(&lo, &hi, chart);
	step = nice_step(hi - lo);
	veld_render__fmt(b, "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart\" viewBox=\"0 0 %.0f %.0f\" "
	                 "width=\"%.0f\" height=\"%.0f\" role=\"img\">", W, H, W, H);
#define XPOS(k) (nl > 1 ? L + (W - L - R) * (double)(k) / (double)(nl - 1) : L + (W - L - R) / 2)
#define YPOS(d) (T + plot_h - ((d) - lo) / (hi - lo) * plot_h)
	for (y = -veld_render__floor(-lo / step) * step; y <= hi + step / 1000; y += step) {
		veld_render__fmt(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" class=\"gr\"/>", L, YPOS(y), W - R,
		                 YPOS(y));
		veld_render__chart_value(val, sizeof val, y, unit);
		svg_text(b, L - 6, YPOS(y) + 4, "end", "vl", val);
	}
	for (i = 0; i < nl; i++)
		svg_text(b, XPOS(i), T + plot_h + 20, "middle", "lb", json_string_value(json_array_get(labels, i)));
	json_array_foreach(series, j, s)
	{
		int open = 0;
		json_t *vals = json_object_get(s, "values");
		for (i = 0; i < nl; i++) {
			v = json_array_get(vals, i);
			if (!json_is_number(v)) {
				if (open)
					veld_render__str(b, "\"/>");
				open = 0;
				continue;
			}
			if (!open)
				veld_render__fmt(b, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2.5\"%s points=\"",
				                 colour(j), dash(j));
			veld_render__fmt(b, "%.1f,%.1f ", XPOS(i),
			                 YPOS(json_number_value(v)) + dodge(series, j, i, json_number_value(v)));
			open = 1;
		}
		if (open)
			veld_render__str(b, "\"/>");
		json_array_foreach(vals, i, v) if (json_is_number(v))
			svg_marker(b, j, XPOS(i), YPOS(json_number_value(v)) + dodge(series, j, i, json_number_value(v)));
	}
#undef XPOS
#undef YPOS
	svg_legend(b, series, T + plot_h + B + 10, W, 1);
	veld_render__str(b, "</svg>");
}

static const char HTML_STYLE[] =
	"body{font-family:'DejaVu Sans',Arial,Helvetica,sans-serif;color:#1d2731;margin:0;background:#f6f7f9}"
	"main{max-width:900px;margin:0 auto;padding:24px 32px;background:#fff;min-height:100vh}"
	"h1{font-size:26px;margin:8px 0 4px;color:#163b5c}"
	"p.sub{color:#5f6b73;margin-top:0}p.by{color:#5f6b73;font-size:13px;margin-top:-8px}"
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

static void html_table(veld_render_out *b, const json_t *tab)
{
	veld_render_col cols[VELD_RENDER_COLS];
	size_t nc = veld_render__columns(cols, json_object_get(tab, "columns")), i, j;
	json_t *row;
	char small[96];
	veld_render__str(b, "<table><thead><tr>");
	for (j = 0; j < nc; j++) {
		veld_render__str(b, veld_render__numeric(&cols[j]) ? "<th class=\"n\">" : "<th>");
		html_esc(b, cols[j].label);
		veld_render__str(b, "</th>");
	}
	veld_render__str(b, "</tr></thead><tbody>\n");
	json_array_foreach(json_object_get(tab, "rows"), i, row)
	{
		veld_render__str(b, "<tr>");
		for (j = 0; j < nc; j++) {
			veld_render__str(b, veld_render__numeric(&cols[j]) ? "<td class=\"n\">" : "<td>");
			html_esc(b, veld_render__cell(small, sizeof small, json_array_get(row, j), &cols[j], 1));
			veld_render__str(b, "</td>");
		}
		veld_render__str(b, "</tr>\n");
	}
	veld_render__str(b, "</tbody></table>\n");
}

/* open, the text escaped, close; nothing for no text. */
static void html_elem(veld_render_out *b, const char *open, const char *text, const char *close)
{
	if (!text)
		return;
	veld_render__str(b, open);
	html_esc(b, text);
	veld_render__str(b, close);
}

void veld_render__html(veld_render_out *b, const json_t *r)
{
	const char *title = json_string_value(json_object_get(r, "title"));
	size_t i, j;
	json_t *sec, *p;
	veld_render__str(b, "<!DOCTYPE html>\n<html lang=\"nl\">\n<head>\n<meta charset=\"utf-8\">\n"
	                 "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
	                    "style-src 'unsafe-inline'\">\n"
	                    "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
	html_elem(b, "<title>", title, "</title>\n");
	veld_render__str(b, "<style>");
	veld_render__str(b, HTML_STYLE);
	veld_render__str(b, "</style>\n</head>\n<body>\n<main>\n");
	html_elem(b, "<h1>", title, "</h1>\n");
	html_elem(b, "<p class=\"sub\">", json_string_value(json_object_get(r, "subtitle")), "</p>\n");
	html_elem(b, "<p class=\"by\">", json_string_value(json_object_get(r, "byline")), "</p>\n");
	json_array_foreach(json_object_get(r, "sections"), i, sec)
	{
		json_t *chart = json_object_get(sec, "chart");
		veld_render__str(b, "<section>\n");
		html_elem(b, "<h2>", json_string_value(json_object_get(sec, "title")), "</h2>\n");
		json_array_foreach(json_object_get(sec, "paragraphs"), j, p) html_elem(b, "<p>", json_string_value(p), "</p>\n");
		if (json_object_get(sec, "table"))
			html_table(b, json_object_get(sec, "table"));
		if (chart) {
			veld_render__str(b, "<figure>");
			if (!strcmp(json_string_value(json_object_get(chart, "type")), "bar"))
				svg_bar(b, chart);
			else
				svg_line(b, chart);
			html_elem(b, "<figcaption>", json_string_value(json_object_get(chart, "title")), "</figcaption>");
			veld_render__str(b, "</figure>\n");
		}
		veld_render__str(b, "</section>\n");
	}
	veld_render__str(b, "</main>\n</body>\n</html>\n");
}
