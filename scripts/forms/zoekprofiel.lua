-- zoekprofiel — the case-level search profile of the Huiswijs project: what
-- the client looks for, and since when the client is on the waiting list
-- for social housing.  After four years on that list a tenant on the private
-- market may claim the Flemish rent premium (huurpremie); the computed value
-- "huurpremie" flags it.  The number of years is a parameter the office
-- edits.  Compartment: huiswijs.

form {
	name = "zoekprofiel",
	version = 1,
	compartment = "huiswijs",
	label = "Zoekprofiel",
	description = "Wat de cliënt zoekt en sinds wanneer de cliënt op de wachtlijst voor een sociale woning staat.",

	params = {
		huurpremie_na_jaren = 4, -- years on the waiting list before the rent premium
	},

	fields = {
		field.int { "gezinsgrootte", label = "Gezinsgrootte (personen)", required = true, min = 1, max = 20 },
		field.decimal { "max_huur", label = "Maximale huur per maand", min = 0, unit = "euro" },
		field.multi { "regios", label = "Regio's",
			options = {
				{ "antwerpen", "Antwerpen" },
				{ "limburg", "Limburg" },
				{ "oost_vlaanderen", "Oost-Vlaanderen" },
				{ "vlaams_brabant", "Vlaams-Brabant" },
				{ "west_vlaanderen", "West-Vlaanderen" },
				{ "brussel", "Brussel" },
			} },
		field.text { "gemeenten", label = "Gemeenten", help = "Gemeenten of wijken waar de cliënt wil wonen." },
		field.date { "wachtlijst_sinds", label = "Op de wachtlijst voor een sociale woning sinds",
			past = "De inschrijving op de wachtlijst kan niet in de toekomst liggen." },
	},

	computed = {
		-- {recht = true|false, vanaf = "YYYY-MM-DD"} once a waiting-list date is known.
		huurpremie = function(r, ctx)
			if not r.wachtlijst_sinds then return nil end
			local vanaf = date.add_years(r.wachtlijst_sinds, ctx.params.huurpremie_na_jaren)
			return { vanaf = vanaf, recht = ctx.vandaag >= vanaf }
		end,
	},
}
