-- jaarcijfers — the yearly figures of the social service for one year,
-- beside the year before: the contacts by place, the problem categories
-- ranked, and the details (debts, housing, health, burn-out, stress,
-- questions about the service itself) as count and share of the contacts.
-- The page "Cijfers Sociale Dienst" (seed 000) is what it reproduces.
-- Parameters: {year = 2017}; without a year, the last full year (the year
-- of `today` minus one), and the subtitle says so.  Office report over
-- contactregistratie.

local jaar, gekozen = params.year, true
if jaar == nil then
	jaar, gekozen = math.tointeger(tonumber(string.sub(today, 1, 4))) - 1, false
end
if math.type(jaar) ~= "integer" then
	error("jaarcijfers needs a year as a whole number: {\"year\": 2017}")
end
local vorig = jaar - 1

local L = form_labels("contactregistratie")

-- One scan of the two years, counted in C.
local t = tally {
	form = "contactregistratie",
	where = { datum = { from = vorig .. "-01-01", to = jaar .. "-12-31" } },
	group = "year",
	by = { "plaats", "problematiek", "detail" },
}
local function year_of(y)
	local g = t[y] or {}
	return { n = g.n or 0, plaats = g.plaats or {}, problematiek = g.problematiek or {},
		detail = g.detail or {} }
end
local nu, toen = year_of(jaar), year_of(vorig)

local function cols(first)
	return {
		first,
		{ label = tostring(jaar), type = "count" },
		{ label = "% " .. jaar, type = "pct" },
		{ label = tostring(vorig), type = "count" },
		{ label = "% " .. vorig, type = "pct" },
	}
end

local function row(label, a, b)
	return { label, a, pct(a, nu.n), b, pct(b, toen.n) }
end

-- What was counted but is no option of the form (an older version) is
-- still shown, under its own value.
local function values_of(path, counts_a, counts_b)
	local list, seen = {}, {}
	for _, v in ipairs(L[path].order) do
		list[#list + 1] = v
		seen[v] = true
	end
	for _, counts in ipairs({ counts_a, counts_b }) do
		local extra = {}
		for v in pairs(counts) do
			if not seen[v] then extra[#extra + 1] = v; seen[v] = true end
		end
		table.sort(extra, function(x, y) return tostring(x) < tostring(y) end)
		for _, v in ipairs(extra) do list[#list + 1] = v end
	end
	return list
end

local function label(path, v)
	return L[path].options[v] or tostring(v)
end

-- "In 2017 waren er 2.329 contacten", "In 2017 was er 1 contact".
local function er_waren(j, n)
	return "In " .. j .. " " .. nl.woord(n, "was", "waren") .. " er " .. nl.aantal(n, "contact", "contacten")
end

-- 1. Aard van de contacten ------------------------------------------------
local plaats_rows, chart_labels, s_nu, s_toen, delen = {}, {}, {}, {}, {}
-- How a count of contacts at a place reads: {singular, plural}.
local benaming = {
	huisbezoek = { "huisbezoek", "huisbezoeken" }, zitdag = { "contact op een zitdag", "contacten op zitdagen" },
	werkplaats = { "op de werkplaats van de cliënt" }, hoofdzetel = { "op de hoofdzetel" },
	elders = { "elders" }, telefonisch = { "telefonisch" }, digitaal = { "digitaal" },
}
for _, v in ipairs(values_of("plaats", nu.plaats, toen.plaats)) do
	local a, b = nu.plaats[v] or 0, toen.plaats[v] or 0
	if a > 0 or b > 0 then
		plaats_rows[#plaats_rows + 1] = row(label("plaats", v), a, b)
		chart_labels[#chart_labels + 1] = label("plaats", v)
		s_nu[#s_nu + 1] = pct(a, nu.n)
		s_toen[#s_toen + 1] = pct(b, toen.n)
		if a > 0 then
			local b = benaming[v] or { label("plaats", v) }
			delen[#delen + 1] = nl.aantal(a, b[1], b[2] or b[1])
		end
	end
end
plaats_rows[#plaats_rows + 1] = { "Totaal", nu.n, pct(nu.n, nu.n), toen.n, pct(toen.n, toen.n) }

local aard = {
	title = "Aard van de contacten",
	paragraphs = {
		er_waren(jaar, nu.n) .. (#delen > 0 and (": " .. opsomming(delen) .. ".") or "."),
		er_waren(vorig, toen.n) .. ".",
	},
	table = { columns = cols("Plaats"), rows = plaats_rows },
	chart = { type = "bar", title = "Contacten per plaats (% van de contacten)", unit = "%",
		labels = chart_labels,
		series = { { name = tostring(jaar), values = s_nu }, { name = tostring(vorig), values = s_toen } } },
}

-- 2. Aangehaalde problematieken -----------------------------------------
local rangorde = ranked(nu.problematiek)
for _, v in ipairs(values_of("problematiek", nu.problematiek, toen.problematiek)) do
	if not nu.problematiek[v] and toen.problematiek[v] then
		rangorde[#rangorde + 1] = { value = v, count = 0 }
	end
end
local prob_rows, p_labels, p_nu, p_toen, volgorde = {}, {}, {}, {}, {}
for i, e in ipairs(rangorde) do
	local b = toen.problematiek[e.value] or 0
	prob_rows[#prob_rows + 1] = { i, label("problematiek", e.value), e.count, pct(e.count, nu.n), b, pct(b, toen.n) }
	p_labels[#p_labels + 1] = label("problematiek", e.value)
	p_nu[#p_nu + 1] = pct(e.count, nu.n)
	p_toen[#p_toen + 1] = pct(b, toen.n)
	volgorde[#volgorde + 1] = i .. ". " .. label("problematiek", e.value)
end
local prob_cols = cols("Problematiek")
table.insert(prob_cols, 1, { label = "Rang", type = "int" })

local function zin(aantal_nu, aantal_toen)
	return nl.count(aantal_nu) .. " (" .. nl.pct(pct(aantal_nu, nu.n)) .. ") " ..
		nl.woord(aantal_nu, "contact", "contacten") .. " in " .. jaar .. " t.o.v. " ..
		nl.aantal(aantal_toen, "contact", "contacten") .. " (" .. nl.pct(pct(aantal_toen, toen.n)) ..
		") in " .. vorig
end

local mat_a, mat_b = nu.problematiek.materieel or 0, toen.problematiek.materieel or 0
local problematiek = {
	title = "Aangehaalde problematieken in de contacten",
	paragraphs = {
		"Volgorde in " .. jaar .. ": " .. table.concat(volgorde, ", ") .. ".",
		"Materiële noden komen voor in " .. zin(mat_a, mat_b) .. ".",
	},
	table = { columns = prob_cols, rows = prob_rows },
	chart = { type = "bar", title = "Problematieken (% van de contacten)", unit = "%",
		labels = p_labels,
		series = { { name = tostring(jaar), values = p_nu }, { name = tostring(vorig), values = p_toen } } },
}

-- 3. Details ------------------------------------------------------------------
local DETAILS = { "schulden", "huisvesting", "fysieke_gezondheid", "psychische_gezondheid",
	"burn_out", "stress", "werking_sociale_dienst" }
local det_rows, d_labels, d_nu, d_toen = {}, {}, {}, {}
for _, v in ipairs(DETAILS) do
	local a, b = nu.detail[v] or 0, toen.detail[v] or 0
	det_rows[#det_rows + 1] = row(label("detail", v), a, b)
	d_labels[#d_labels + 1] = label("detail", v)
	d_nu[#d_nu + 1] = pct(a, nu.n)
	d_toen[#d_toen + 1] = pct(b, toen.n)
end
local d = nu.detail
local e = toen.detail
local details = {
	title = "Details",
	paragraphs = {
		"Fysieke gezondheid komt aan bod in " .. nl.pct(pct(d.fysieke_gezondheid or 0, nu.n)) ..
			" van de contacten in " .. jaar .. " t.o.v. " .. nl.pct(pct(e.fysieke_gezondheid or 0, toen.n)) ..
			" in " .. vorig .. "; psychische gezondheid in " .. nl.pct(pct(d.psychische_gezondheid or 0, nu.n)) ..
			" t.o.v. " .. nl.pct(pct(e.psychische_gezondheid or 0, toen.n)) .. ".",
		"Vermoeden van burn-out: " .. nl.aantal(d.burn_out or 0, "contact", "contacten") .. " in " .. jaar ..
			" t.o.v. " .. nl.count(e.burn_out or 0) .. " in " .. vorig .. ". Stress: " ..
			zin(d.stress or 0, e.stress or 0) .. ".",
		"Vragen over de werking van de sociale dienst: " ..
			zin(d.werking_sociale_dienst or 0, e.werking_sociale_dienst or 0) .. ".",
	},
	table = { columns = cols("Detail"), rows = det_rows },
	chart = { type = "bar", title = "Details (% van de contacten)", unit = "%",
		labels = d_labels,
		series = { { name = tostring(jaar), values = d_nu }, { name = tostring(vorig), values = d_toen } } },
}

return {
	title = "Jaarcijfers " .. jaar,
	subtitle = "Contactregistraties van " .. jaar ..
		(gekozen and "" or " (het laatste volledige jaar)") ..
		", naast " .. vorig .. ".",
	byline = opgemaakt(),
	sections = { aard, problematiek, details },
}
