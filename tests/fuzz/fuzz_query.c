/*
** fuzz_query.c — a report's query spec (veld_query__read in
** scripts/report_query.c), the table a script hands records{}, each{} and
** tally{}, read in the sandbox as a report's would be.
**
** Input: the spec as JSON (an object becomes the Lua table).  It is read
** once as for each{} and once as for tally{}; an author's mistake is a Lua
** error (VELD_EINVALID), never more.  Every condition of a spec that reads
** is matched against a few values of each kind.
*/
#include "fuzz.h"
#include "scripts.h"

#include <lua.h>

#include <stdlib.h>
#include <string.h>

typedef struct query_run {
	const json_t *spec;
	const json_t *probes;
	int for_tally;
} query_run;

static int read_spec(lua_State *L)
{
	query_run *q = lua_touserdata(L, 1);
	const veld_query *vq;
	size_t i, j;
	veld_sandbox__push_json(L, q->spec);
	vq = veld_query__read(L, lua_gettop(L), q->for_tally);
	VELD_FUZZ_CHECK(vq != NULL && vq->npaths <= VELD_QUERY_PATHS && vq->nconds <= VELD_QUERY_PATHS);
	for (i = 0; i < vq->nconds; i++) {
		VELD_FUZZ_CHECK(vq->conds[i].col >= 0 && (size_t)vq->conds[i].col < vq->npaths);
		for (j = 0; j < json_array_size(q->probes); j++)
			(void)veld_query__match(&vq->conds[i], json_array_get(q->probes, j));
		(void)veld_query__match(&vq->conds[i], NULL);
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char probes[] = "[null, \"\", \"ja\", \"2017-03-01\", 0, -1.5, 2017, true, false,"
	                             " [\"a\", \"b\"], [], [1, 2]]";
	veld_sandbox_limits lim = {0};
	veld_sandbox *sb = NULL;
	json_error_t jerr;
	query_run q;
	int rc;
	q.spec = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &jerr);
	q.probes = json_loads(probes, 0, NULL);
	VELD_FUZZ_CHECK(q.probes != NULL);
	lim.memory = (size_t)4 << 20;
	lim.instructions = 200000;
	if (q.spec && veld_sandbox__new(&sb, &lim) == VELD_OK) {
		for (q.for_tally = 0; q.for_tally < 2; q.for_tally++) {
			VELD_FUZZ_CHECK(veld_sandbox__reset(sb) == VELD_OK);
			rc = veld_sandbox__ccall(sb, read_spec, &q);
			VELD_FUZZ_CHECK(rc == VELD_OK || rc == VELD_EINVALID);
		}
	}
	veld_sandbox__free(sb);
	json_decref((json_t *)q.spec);
	json_decref((json_t *)q.probes);
	return 0;
}
