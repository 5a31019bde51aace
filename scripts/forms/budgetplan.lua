-- budgetplan — the plan of a budget guidance, budget management or debt
-- mediation: income, fixed costs, debts, repayments and the living
-- allowance.  The plan must balance every month; one that does not is a
-- validation error that names the shortfall in euro.  For debt mediation
-- and the collective debt settlement (csr) a plan runs at most seven years.
-- Compartment: social.
--
-- Amounts are exact: integers in cents.  Amounts that are not monthly are
-- brought to a year (x52 a week, x26 every two weeks, x12 a month, x4 a
-- quarter, x1 a year) and compared per year, so no rounding happens before
-- the comparison; the shortfall per month is rounded up to the cent.

local FREQUENTIES = {
	{ "week", "Per week" },
	{ "twee_weken", "Per twee weken" },
	{ "maand", "Per maand" },
	{ "kwartaal", "Per kwartaal" },
	{ "jaar", "Per jaar" },
}
local PER_JAAR = { week = 52, twee_weken = 26, maand = 12, kwartaal = 4, jaar = 1 }

local function bedragen(omschrijving)
	return {
		field.text { "omschrijving", label = omschrijving, required = true },
		field.decimal { "bedrag", label = "Bedrag", required = true, min = 0, unit = "euro" },
		field.choice { "frequentie", label = "Frequentie", options = FREQUENTIES,
			help = "Zonder frequentie geldt het bedrag per maand." },
	}
end

-- Cents per year of a repeating group of {bedrag, frequentie}.
local function per_jaar(items)
	local som = 0
	for _, it in pairs(items or {}) do
		if it.bedrag then som = som + it.bedrag * PER_JAAR[it.frequentie or "maand"] end
	end
	return som
end

-- Everything per year, in cents.
local function jaarbalans(r)
	local inkomsten = per_jaar(r.inkomsten)
	local uitgaven = per_jaar(r.vaste_kosten)
	for _, a in pairs(r.aflossingen or {}) do
		if a.maandbedrag then uitgaven = uitgaven + 12 * a.maandbedrag end
	end
	if r.leefgeld.bedrag then
		uitgaven = uitgaven + r.leefgeld.bedrag * PER_JAAR[r.leefgeld.frequentie or "maand"]
	end
	return inkomsten, uitgaven
end

local function ceil_div(a, b) return -((-a) // b) end

form {
	name = "budgetplan",
	version = 1,
	compartment = "social",
	label = "Budgetplan",
	description = "Budgetbegeleiding, budgetbeheer, schuldbemiddeling en collectieve schuldenregeling.",

	params = {
		max_looptijd_jaren = 7, -- schuldbemiddeling and csr
	},

	fields = {
		field.choice { "vorm", label = "Vorm", required = true,
			options = {
				{ "budgetbegeleiding", "Budgetbegeleiding" },
				{ "budgetbeheer", "Budgetbeheer" },
				{ "schuldbemiddeling", "Schuldbemiddeling" },
				{ "csr", "Collectieve schuldenregeling" },
			} },
		field.date { "startdatum", label = "Startdatum", required = true },
		field.date { "einddatum", label = "Einddatum",
			required = when("vorm", "in", { "schuldbemiddeling", "csr" }) },
		field.group { "inkomsten", label = "Inkomsten", repeating = true, fields = bedragen("Bron van inkomsten") },
		field.group { "vaste_kosten", label = "Vaste kosten", repeating = true, fields = bedragen("Omschrijving") },
		field.group { "schulden", label = "Schulden", repeating = true,
			fields = {
				field.text { "schuldeiser", label = "Schuldeiser", required = true },
				field.choice { "type", label = "Soort schuld",
					options = {
						{ "consumentenkrediet", "Consumentenkrediet" },
						{ "hypotheek", "Hypothecair krediet" },
						{ "huur", "Huur" },
						{ "energie", "Energie en water" },
						{ "telecom", "Telecom" },
						{ "gezondheidszorg", "Gezondheidszorg" },
						{ "belastingen", "Belastingen" },
						{ "boetes", "Boetes" },
						{ "andere", "Andere" },
					} },
				field.decimal { "hoofdsom", label = "Hoofdsom", min = 0, unit = "euro" },
				field.choice { "status", label = "Status",
					options = {
						{ "open", "Open" },
						{ "betwist", "Betwist" },
						{ "afbetalingsplan", "Afbetalingsplan" },
						{ "afbetaald", "Afbetaald" },
					} },
			} },
		field.group { "aflossingen", label = "Aflossingen", repeating = true,
			fields = {
				field.text { "schuldeiser", label = "Schuldeiser", required = true },
				field.decimal { "maandbedrag", label = "Bedrag per maand", required = true, min = 0, unit = "euro" },
				field.int { "termijnen", label = "Aantal maanden", min = 1 },
			} },
		field.group { "leefgeld", label = "Leefgeld",
			fields = {
				field.decimal { "bedrag", label = "Bedrag", min = 0, unit = "euro" },
				field.choice { "frequentie", label = "Frequentie", options = FREQUENTIES,
					help = "Zonder frequentie geldt het bedrag per maand." },
			} },
	},

	rules = {
		-- The end lies after the start.
		function(r, err)
			if r.startdatum and r.einddatum and r.einddatum < r.startdatum then
				err("einddatum", "De einddatum ligt vóór de startdatum.")
			end
		end,
		-- Debt mediation and csr: at most seven years.
		function(r, err, ctx)
			if (r.vorm == "schuldbemiddeling" or r.vorm == "csr") and r.startdatum and r.einddatum then
				local jaren = ctx.params.max_looptijd_jaren
				local uiterst = date.add_years(r.startdatum, jaren)
				if r.einddatum > uiterst then
					err("einddatum", ("Een %s duurt hoogstens %d jaar: de einddatum ligt te ver na de startdatum."):format(
						r.vorm == "csr" and "collectieve schuldenregeling" or "schuldbemiddeling", jaren))
				end
			end
		end,
		-- The plan balances: income - fixed costs - living allowance - repayments >= 0.
		function(r, err)
			local inkomsten, uitgaven = jaarbalans(r)
			if uitgaven > inkomsten then
				err("maandbalans", "Het plan sluit niet: de uitgaven zijn hoger dan de inkomsten.")
			end
		end,
	},

	computed = {
		inkomsten_per_maand = function(r)
			local inkomsten = jaarbalans(r)
			return euro.string(inkomsten // 12)
		end,
		uitgaven_per_maand = function(r)
			local _, uitgaven = jaarbalans(r)
			return euro.string(ceil_div(uitgaven, 12))
		end,
		-- Rounded down: a shortfall of a fraction of a cent shows as -0.01.
		maandbalans = function(r)
			local inkomsten, uitgaven = jaarbalans(r)
			return euro.string((inkomsten - uitgaven) // 12)
		end,
	},
}
