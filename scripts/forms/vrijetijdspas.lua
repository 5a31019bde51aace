-- vrijetijdspas — the income-based leisure pass: eligibility by a ground
-- (an entitlement that already proves a low income) or by an income test,
-- and the refunds of leisure costs made with the pass.  Compartment: social.
--
-- The income limits change every year: they live in `params` below, which
-- the office edits when the new amounts are published (amounts as text,
-- "25630.67", so they are read exactly).  The limit of a year is
--   basis + per_persoon_ten_laste x shares,
-- where every dependant counts as one share and a dependant with a
-- disability of at least 66% as two.
--
-- The dates of what happened (the application, a birth, a refund) cannot
-- lie in the future (`past = true`).

local GRONDEN_AUTOMATISCH = {
	verhoogde_tegemoetkoming = true, leefloon = true, equivalent_leefloon = true,
	budgetbegeleiding = true, schuldbemiddeling = true, collectieve_schuldenregeling = true,
}

form {
	name = "vrijetijdspas",
	version = 1,
	compartment = "social",
	label = "Vrijetijdspas",
	description = "Aanvraag, beslissing en terugbetalingen van de vrijetijdspas.",

	params = {
		inkomensgrenzen = {
			-- year of the application = { basis, per dependant }
			["2024"] = { basis = "25630.67", per_persoon_ten_laste = "4744.94" },
		},
		geldigheid_maanden = 12, -- a granted pass is valid this long from the application
	},

	fields = {
		field.date { "aanvraagdatum", label = "Datum van de aanvraag", required = true, past = true },
		field.choice { "grond", label = "Grond", required = true,
			options = {
				{ "verhoogde_tegemoetkoming", "Verhoogde tegemoetkoming" },
				{ "leefloon", "Leefloon" },
				{ "equivalent_leefloon", "Equivalent leefloon" },
				{ "budgetbegeleiding", "Budgetbegeleiding" },
				{ "schuldbemiddeling", "Schuldbemiddeling" },
				{ "collectieve_schuldenregeling", "Collectieve schuldenregeling" },
				{ "inkomenstoets", "Inkomenstoets" },
			} },
		field.decimal { "belastbaar_inkomen", label = "Gezamenlijk belastbaar inkomen", min = 0, unit = "euro",
			required = when("grond", "=", "inkomenstoets"),
			visible = when("grond", "=", "inkomenstoets") },
		field.group { "personen_ten_laste", label = "Personen ten laste", repeating = true,
			visible = when("grond", "=", "inkomenstoets"),
			fields = {
				field.text { "voornaam", label = "Voornaam", required = true },
				field.date { "geboortedatum", label = "Geboortedatum", past = true },
				field.bool { "handicap_66pct", label = "Handicap van minstens 66%",
					help = "Een persoon ten laste met een handicap van minstens 66% telt dubbel." },
			} },
		field.group { "terugbetalingen", label = "Terugbetalingen", repeating = true,
			fields = {
				field.date { "datum", label = "Datum", past = true },
				field.choice { "activiteit_type", label = "Soort activiteit", required = true,
					options = {
						{ "sport", "Sport" },
						{ "cultuur", "Cultuur" },
						{ "jeugdwerking", "Jeugdwerking" },
						{ "vakantie", "Vakantie en kamp" },
						{ "vorming", "Vorming" },
					} },
				field.text { "omschrijving", label = "Omschrijving" },
				field.decimal { "bedrag", label = "Bedrag", required = true, min = 0, unit = "euro" },
				field.int { "percentage", label = "Terugbetalingspercentage", required = true, min = 0, max = 100, unit = "%" },
				field.decimal { "jaarplafond", label = "Jaarplafond voor dit soort activiteit", min = 0, unit = "euro" },
				field.decimal { "terugbetaald", label = "Terugbetaald", required = true, min = 0, unit = "euro" },
			} },
	},

	rules = {
		-- The income test needs the limits of the application's year.
		function(r, err, ctx)
			if r.grond == "inkomenstoets" and r.aanvraagdatum
				and not ctx.params.inkomensgrenzen[tostring(date.year(r.aanvraagdatum))] then
				err("aanvraagdatum", "Er zijn nog geen inkomensgrenzen voor het jaar van de aanvraagdatum in de parametertabel.")
			end
		end,
		-- A refund is at most the percentage of the amount.
		function(r, err)
			for id, t in pairs(r.terugbetalingen or {}) do
				if t.bedrag and t.percentage and t.terugbetaald and t.terugbetaald * 100 > t.bedrag * t.percentage then
					err("terugbetalingen." .. id .. ".terugbetaald",
						"Terugbetaald is meer dan het percentage van het bedrag.")
				end
			end
		end,
		-- Refunds of one kind of activity stay within that kind's yearly ceiling.
		function(r, err)
			local totaal, plafond, laatste = {}, {}, {}
			local ids = {}
			for id in pairs(r.terugbetalingen or {}) do ids[#ids + 1] = id end
			table.sort(ids)
			for _, id in ipairs(ids) do
				local t = r.terugbetalingen[id]
				if t.activiteit_type and t.terugbetaald then
					local k = t.activiteit_type
					totaal[k] = (totaal[k] or 0) + t.terugbetaald
					if t.jaarplafond then plafond[k] = math.min(plafond[k] or t.jaarplafond, t.jaarplafond) end
					laatste[k] = id
				end
			end
			for k, som in pairs(totaal) do
				if plafond[k] and som > plafond[k] then
					err("terugbetalingen." .. laatste[k] .. ".terugbetaald",
						"De terugbetalingen voor dit soort activiteit overschrijden het jaarplafond.")
				end
			end
		end,
		-- Refunds only with a granted pass.
		function(r, err, ctx)
			if next(r.terugbetalingen or {}) and ctx.computed.beslissing ~= "toegekend" then
				err("terugbetalingen", "Terugbetalingen zijn enkel mogelijk met een toegekende vrijetijdspas.")
			end
		end,
	},

	computed = {
		-- The income limit for this household (euro, as text).
		inkomensgrens = function(r, ctx)
			if r.grond ~= "inkomenstoets" or not r.aanvraagdatum then return nil end
			local g = ctx.params.inkomensgrenzen[tostring(date.year(r.aanvraagdatum))]
			if not g then return nil end
			local aandelen = 0
			for _, p in pairs(r.personen_ten_laste or {}) do
				aandelen = aandelen + (p.handicap_66pct and 2 or 1)
			end
			return euro.string(euro.cents(g.basis) + aandelen * euro.cents(g.per_persoon_ten_laste))
		end,
		-- "toegekend" or "geweigerd"; absent while the data to decide is missing.
		beslissing = function(r, ctx)
			if r.grond == nil then return nil end
			if r.grond ~= "inkomenstoets" then
				return GRONDEN_AUTOMATISCH[r.grond] and "toegekend" or nil
			end
			local g = ctx.params.inkomensgrenzen[tostring(date.year(r.aanvraagdatum or ""))]
			if not g or not r.belastbaar_inkomen then return nil end
			local aandelen = 0
			for _, p in pairs(r.personen_ten_laste or {}) do
				aandelen = aandelen + (p.handicap_66pct and 2 or 1)
			end
			local grens = euro.cents(g.basis) + aandelen * euro.cents(g.per_persoon_ten_laste)
			return r.belastbaar_inkomen <= grens and "toegekend" or "geweigerd"
		end,
		-- The last day of validity of a granted pass.
		geldig_tot = function(r, ctx)
			if not r.aanvraagdatum then return nil end
			local m = ctx.params.geldigheid_maanden
			return date.add_days(date.add_months(r.aanvraagdatum, m), -1)
		end,
	},
}
