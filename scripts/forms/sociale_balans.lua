-- sociale_balans — the Sociale Balans: one record per assessment (a "photo"
-- of the client's situation); successive balances of a case are compared.
-- Luik 1 scores sixteen life domains, Luik 2 lists the proposed actions.
-- Compartment: social.
--
-- Context: "vorige" = the previous balance of the same case (as stored);
-- the computed value "verandering" gives the change per domain since then.
--
-- The afnamedatum cannot lie in the future (`past = true`); a termijn, a
-- planned date, can.

local DOMEINEN = {
	{ "familiale_situatie", "Familiale situatie" },
	{ "huisvesting", "Huisvesting" },
	{ "gezondheid_lichamelijk", "Lichamelijke gezondheid" },
	{ "gezondheid_psychisch", "Psychische gezondheid" },
	{ "inkomen", "Inkomen" },
	{ "budget_schulden", "Budget en schulden" },
	{ "administratie", "Administratie" },
	{ "mobiliteit", "Mobiliteit" },
	{ "opleiding_vorming", "Opleiding en vorming" },
	{ "werk", "Werk" },
	{ "vrije_tijd", "Vrije tijd" },
	{ "zelfvertrouwen", "Zelfvertrouwen" },
	{ "communicatie", "Communicatie" },
	{ "ict_vaardigheden", "ICT-vaardigheden" },
	{ "sociaal_netwerk", "Sociaal netwerk" },
	{ "organisatie_planning", "Organisatie en planning" },
}

local SCORES = {
	{ 1, "1 – acuut probleem" },
	{ 2, "2 – niet zelfredzaam" },
	{ 3, "3 – beperkt zelfredzaam" },
	{ 4, "4 – voldoende zelfredzaam" },
	{ 5, "5 – volledig zelfredzaam" },
	{ "nvt", "n.v.t." },
}

local fields = {
	field.date { "afnamedatum", label = "Afnamedatum", required = true, past = true },
	field.choice { "context", label = "Context",
		options = {
			{ "opmaak", "Opmaak" },
			{ "evaluatie", "Evaluatie" },
			{ "herziening", "Herziening" },
			{ "afsluiting", "Afsluiting" },
		} },
	field.bool { "client_betrokken", label = "Cliënt betrokken bij de opmaak" },
}

-- Luik 1: one group per domain.
for _, d in ipairs(DOMEINEN) do
	fields[#fields + 1] = field.group { d[1], label = d[2],
		fields = {
			field.choice { "score", label = "Score", required = true, options = SCORES },
			field.text { "stabiliserend", label = "Stabiliserende factoren", multiline = true },
			field.text { "destabiliserend", label = "Destabiliserende factoren", multiline = true },
			field.bool { "prioriteit", label = "Prioriteit" },
		} }
end

fields[#fields + 1] = field.text { "synthese", label = "Synthese", multiline = true }

-- Luik 2: action proposals, keyed by item id.
fields[#fields + 1] = field.group { "actievoorstellen", label = "Actievoorstellen", repeating = true,
	fields = {
		field.choice { "domein", label = "Domein", required = true, options = DOMEINEN },
		field.text { "doelstelling", label = "Doelstelling", required = true, multiline = true },
		field.text { "actie", label = "Actie", required = true, multiline = true },
		field.choice { "verantwoordelijke", label = "Verantwoordelijke",
			options = {
				{ "cliënt", "Cliënt" },
				{ "medewerker", "Medewerker" },
				{ "partner", "Partner" },
			} },
		field.text { "partner", label = "Partner",
			required = when("verantwoordelijke", "=", "partner"),
			visible = when("verantwoordelijke", "=", "partner") },
		field.date { "termijn", label = "Termijn" },
		field.choice { "status", label = "Status", required = true,
			options = {
				{ "gepland", "Gepland" },
				{ "lopend", "Lopend" },
				{ "bereikt", "Bereikt" },
				{ "niet_bereikt", "Niet bereikt" },
				{ "stopgezet", "Stopgezet" },
			} },
	} }

local function numeric(score)
	return math.type(score) == "integer" and score or nil
end

form {
	name = "sociale_balans",
	version = 1,
	compartment = "social",
	label = "Sociale Balans",
	previous = true, -- ctx.vorige: the change per domain since then
	description = "Luik 1: analyse en diagnose per levensdomein. Luik 2: actievoorstellen.",
	fields = fields,

	rules = {
		-- Every domain with priority or a score of 2 or lower needs an action.
		function(r, err)
			local acties = {}
			for _, a in pairs(r.actievoorstellen or {}) do
				if a.domein then acties[a.domein] = (acties[a.domein] or 0) + 1 end
			end
			for _, d in ipairs(DOMEINEN) do
				local g = r[d[1]]
				local score = numeric(g.score)
				if (g.prioriteit or (score and score <= 2)) and not acties[d[1]] then
					err(d[1], ("%s: een domein met prioriteit of een score van 2 of lager heeft minstens één actievoorstel nodig."):format(d[2]))
				end
			end
		end,
	},

	computed = {
		-- Per domain: the score now, the score at the previous balance, and the
		-- change when both are scores (not n.v.t.).
		verandering = function(r, ctx)
			local vorige = ctx.vorige
			if not vorige then return nil end
			local out = {}
			for _, d in ipairs(DOMEINEN) do
				local nu, toen = r[d[1]].score, vorige[d[1]].score
				if nu ~= nil or toen ~= nil then
					out[d[1]] = { nu = nu, vorige = toen,
						verschil = numeric(nu) and numeric(toen) and nu - toen or nil }
				end
			end
			return out
		end,
	},
}
