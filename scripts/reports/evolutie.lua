-- evolutie — how a client's situation changed: the domain scores of every
-- Sociale Balans of the case in the order they were taken, the change
-- between consecutive balances, and the proposed actions with their
-- status.  A line chart shows the scores over time of the domains whose
-- score changed; the domains that stayed the same are listed in a table
-- beside it (sixteen lines on a 1-5 scale would lie on top of each other).
-- Parameters: {case = "<case id>"}.

local id = params.case
if type(id) ~= "string" then
	error("evolutie needs a case: {\"case\": \"<case id>\"}")
end
local dossier = case(id)
if not dossier then
	error("no readable case " .. id)
end

local L = form_labels("sociale_balans")

-- The domains: the groups of the form that carry a score, in form order.
local domeinen = {}
for _, path in ipairs(L.fields) do
	local f = L[path]
	if f.type == "group" and not f.repeating and L[path .. ".score"] then
		domeinen[#domeinen + 1] = path
	end
end

local balansen = records { form = "sociale_balans", case = id }
table.sort(balansen, function(a, b)
	local x, y = a.afnamedatum or "", b.afnamedatum or ""
	if x ~= y then return x < y end
	return a._id < b._id
end)

local function score_of(b, dom)
	local g = b[dom]
	return type(g) == "table" and g.score or nil
end

-- Scores per domain, with the change since the balance before.
local columns = { "Domein" }
for i, b in ipairs(balansen) do
	columns[#columns + 1] = { label = b.afnamedatum and nl.date(b.afnamedatum) or ("Balans " .. i), type = "int" }
	if i > 1 then
		columns[#columns + 1] = { label = "Verschil", type = "delta" }
	end
end
local rows, series, dates = {}, {}, {}
for i, b in ipairs(balansen) do
	dates[i] = b.afnamedatum and nl.date(b.afnamedatum) or ("Balans " .. i)
end
local verbeterd, verslechterd = 0, 0
local vast = {} -- rows of the domains whose score never changed: {label, score}
for _, dom in ipairs(domeinen) do
	local row, values, k = { L[dom].label }, {}, 1
	local prev, eerste, bewogen, nvt
	for i, b in ipairs(balansen) do
		local s = score_of(b, dom)
		k = k + 1
		if math.type(s) == "integer" then
			row[k] = s
			values[i] = s
			eerste = eerste or s
			bewogen = bewogen or s ~= eerste
		elseif s == "nvt" then
			row[k] = "n.v.t."
			nvt = true
		end
		if i > 1 then
			k = k + 1
			if math.type(s) == "integer" and math.type(prev) == "integer" then
				row[k] = s - prev
				if i == #balansen then
					if s > prev then verbeterd = verbeterd + 1 elseif s < prev then verslechterd = verslechterd + 1 end
				end
			end
		end
		prev = s
	end
	rows[#rows + 1] = row
	if bewogen then
		-- false: no score on that balance (a gap in the line)
		local vals = {}
		for i = 1, #balansen do vals[i] = values[i] or false end
		series[#series + 1] = { name = L[dom].label, values = vals }
	else
		vast[#vast + 1] = { L[dom].label, eerste or (nvt and "n.v.t." or "") }
	end
end

-- Empty cells are empty texts (a list cannot hold nil).
local function fix_nils(r, n)
	local out = {}
	for k = 1, n do
		local v = r[k]
		if v == nil then v = "" end
		out[k] = v
	end
	return out
end
for k, r in ipairs(rows) do rows[k] = fix_nils(r, #columns) end

-- Actions of every balance, by balance then item id.
local acties = {}
local ST, VW, DM = L["actievoorstellen.status"].options, L["actievoorstellen.verantwoordelijke"].options,
	L["actievoorstellen.domein"].options
for i, b in ipairs(balansen) do
	local items = {}
	for item in pairs(b.actievoorstellen or {}) do items[#items + 1] = item end
	table.sort(items)
	for _, item in ipairs(items) do
		local a = b.actievoorstellen[item]
		acties[#acties + 1] = fix_nils({
			dates[i], DM[a.domein] or a.domein, a.doelstelling, a.actie,
			a.verantwoordelijke and (VW[a.verantwoordelijke] or a.verantwoordelijke),
			a.termijn, a.status and (ST[a.status] or a.status),
		}, 7)
	end
end

local naam = dossier.name or id
local samenvatting
if #balansen == 0 then
	samenvatting = "Er is nog geen sociale balans voor dit dossier."
elseif #balansen == 1 then
	samenvatting = "Eén sociale balans, afgenomen op " .. dates[1] .. "."
else
	samenvatting = #balansen .. " sociale balansen, van " .. dates[1] .. " tot " .. dates[#balansen] ..
		". Sinds de vorige balans " .. nl.woord(verbeterd, "verbeterde ", "verbeterden ") ..
		nl.aantal(verbeterd, "domein", "domeinen") .. " en " .. nl.woord(verslechterd, "ging", "gingen") ..
		" er " .. verslechterd .. " achteruit."
end

local sections = {
	{
		title = "Scores per domein",
		paragraphs = {
			samenvatting,
			"Schaal: 1 acuut probleem · 2 niet zelfredzaam · 3 beperkt · 4 voldoende · 5 volledig zelfredzaam.",
		},
		table = { columns = columns, rows = rows },
	},
}
if #balansen > 1 then
	local verloop = { title = "Verloop van de scores" }
	if #series == 0 then
		verloop.paragraphs = { "Geen enkele score veranderde tussen de balansen." }
	else
		verloop.paragraphs = { "De grafiek toont " .. nl.woord(#series, "het domein waarvan", "de " ..
			#series .. " domeinen waarvan") .. " de score veranderde" .. (#vast > 0 and ("; " ..
			nl.woord(#vast, "het andere domein staat", "de " .. #vast .. " andere staan") ..
			" in de tabel eronder.") or ".") }
		verloop.chart = { type = "line", title = "Score per domein per balans (1–5), enkel wat veranderde",
			labels = dates, series = series, min = 1, max = 5 }
	end
	sections[#sections + 1] = verloop
	if #vast > 0 then
		sections[#sections + 1] = {
			title = "Domeinen zonder verandering",
			table = { columns = { "Domein", { label = "Score", type = "int" } }, rows = vast },
		}
	end
end
sections[#sections + 1] = {
	title = "Actievoorstellen",
	paragraphs = { #acties == 0 and "Geen actievoorstellen." or (nl.aantal(#acties, "actievoorstel", "actievoorstellen") .. ".") },
	table = {
		columns = { "Balans", "Domein", "Doelstelling", "Actie", "Verantwoordelijke",
			{ label = "Termijn", type = "date" }, "Status" },
		rows = acties,
	},
}

return {
	title = "Evolutie van de sociale balans",
	subtitle = "Dossier: " .. naam,
	byline = opgemaakt(),
	sections = sections,
}
