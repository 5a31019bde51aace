/*
** hlc.c — hybrid logical clock stamps.
**
** Every field version of a record carries a stamp (wall, counter, device):
**   wall     milliseconds since the epoch, taken from the device clock but
**            never less than the wall of any stamp this device made or saw;
**   counter  orders stamps that share a wall value;
**   device   the 32-hex-digit id of the device that made the stamp.
** Stamps are totally ordered by (wall, counter, device).  The order is what
** picks the shown value among concurrent versions, and what keeps a device's
** own edits in order when its clock jumps back (a tablet whose clock was
** reset still stamps each new edit after its previous one: the wall stays
** put and the counter climbs until the clock catches up).
**
** This file owns the arithmetic and the JSON form [wall, counter, "device"].
** It holds no state: the caller keeps `last` (the store persists it) and
** passes the clock reading in, so tests control time completely.
**
** Limits.  Walls are kept within 0 .. 2^53-1 (VELD_HLC_WALL_MAX), the range
** every JSON implementation represents exactly; a stamp outside it is
** malformed.  When the counter would overflow, the wall is bumped by one
** millisecond instead, so a stamp is always strictly greater than `last`.
*/
#include "core.h"

#include <string.h>

int veld_stamp__cmp(const veld_stamp *a, const veld_stamp *b)
{
	int c;
	if (a->wall != b->wall)
		return a->wall < b->wall ? -1 : 1;
	if (a->counter != b->counter)
		return a->counter < b->counter ? -1 : 1;
	c = memcmp(a->device, b->device, VELD_DEVICE_ID_LEN);
	return (c > 0) - (c < 0);
}

/* The (wall, counter) part of `a` is after that of `b`. */
static int hlc_after(int64_t wall, uint32_t counter, const veld_stamp *b)
{
	return wall > b->wall || (wall == b->wall && counter > b->counter);
}

void veld_hlc__next(veld_stamp *out, veld_stamp *last, int64_t now_ms, const char *device)
{
	int64_t wall = now_ms > last->wall ? now_ms : last->wall;
	uint32_t counter = 0;
	if (wall > VELD_HLC_WALL_MAX)
		wall = VELD_HLC_WALL_MAX;
	if (wall == last->wall) {
		if (last->counter < UINT32_MAX) {
			counter = last->counter + 1;
		} else if (wall < VELD_HLC_WALL_MAX) {
			wall++;
			counter = 0;
		} else {
			/* 2^53 ms is about the year 287,000: unreachable by a
			** clock; keep the stamp well-formed rather than wrap. */
			counter = last->counter;
		}
	}
	last->wall = wall;
	last->counter = counter;
	memset(last->device, 0, sizeof last->device);
	if (device)
		strncpy(last->device, device, VELD_DEVICE_ID_LEN);
	*out = *last;
}

void veld_hlc__observe(veld_stamp *last, const veld_stamp *seen, int64_t now_ms)
{
	/* Only the (wall, counter) of a remote stamp matters: the next local
	** stamp must come after it.  `now_ms` plays no part here, since
	** veld_hlc__next reads the clock again. */
	(void)now_ms;
	if (hlc_after(seen->wall, seen->counter, last)) {
		last->wall = seen->wall > VELD_HLC_WALL_MAX ? VELD_HLC_WALL_MAX : seen->wall;
		last->counter = seen->counter;
	}
}

json_t *veld_stamp__to_json(const veld_stamp *s)
{
	json_t *a = json_array();
	if (!a)
		return NULL;
	if (json_array_append_new(a, json_integer((json_int_t)s->wall)) ||
	    json_array_append_new(a, json_integer((json_int_t)s->counter)) ||
	    json_array_append_new(a, json_stringn(s->device, strnlen(s->device, VELD_DEVICE_ID_LEN)))) {
		json_decref(a);
		return NULL;
	}
	return a;
}

int veld_stamp__is_device(const char *s, size_t n)
{
	return n == VELD_DEVICE_ID_LEN && veld_hex__is(s, n);
}

int veld_stamp__from_json(veld_stamp *out, const json_t *j)
{
	const json_t *w, *c, *d;
	json_int_t wv, cv;
	if (!json_is_array(j) || json_array_size(j) != 3)
		return VELD_EINTEGRITY;
	w = json_array_get(j, 0);
	c = json_array_get(j, 1);
	d = json_array_get(j, 2);
	if (!json_is_integer(w) || !json_is_integer(c) || !json_is_string(d))
		return VELD_EINTEGRITY;
	wv = json_integer_value(w);
	cv = json_integer_value(c);
	if (wv < 0 || wv > VELD_HLC_WALL_MAX || cv < 0 || cv > (json_int_t)UINT32_MAX)
		return VELD_EINTEGRITY;
	if (!veld_stamp__is_device(json_string_value(d), json_string_length(d)))
		return VELD_EINTEGRITY;
	out->wall = (int64_t)wv;
	out->counter = (uint32_t)cv;
	memcpy(out->device, json_string_value(d), VELD_DEVICE_ID_LEN);
	out->device[VELD_DEVICE_ID_LEN] = '\0';
	return 0;
}
