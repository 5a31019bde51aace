-- woonzoek — the Huiswijs log: one record per activity of a volunteer who
-- helps a client search the private rental market.  Compartment: huiswijs
-- (volunteers see this part of a case only).  The case-level search profile
-- is the separate form zoekprofiel.
--
-- The datum (of what was done) cannot lie in the future (`past = true`).

form {
	name = "woonzoek",
	version = 1,
	compartment = "huiswijs",
	label = "Woonzoektocht",
	description = "Logboek van de zoektocht naar een woning op de private huurmarkt.",

	fields = {
		field.date { "datum", label = "Datum", required = true, past = true },
		field.int { "duur_min", label = "Duur (minuten)", min = 0, max = 1440, unit = "min" },
		field.choice { "activiteit", label = "Activiteit",
			options = {
				{ "online_zoeken", "Online zoeken" },
				{ "straatprospectie", "Straatprospectie" },
				{ "contact_verhuurder", "Contact met verhuurder" },
				{ "bezichtiging", "Bezichtiging" },
				{ "kandidaatstelling", "Kandidaatstelling" },
				{ "contact_svk", "Contact met sociaal verhuurkantoor" },
				{ "contact_shm", "Contact met sociale huisvestingsmaatschappij" },
				{ "begeleiding_contract", "Begeleiding bij het huurcontract" },
				{ "overleg_medewerker", "Overleg met de medewerker" },
			} },

		-- The property.
		field.int { "pand_postcode", label = "Postcode van het pand", min = 1000, max = 9999 },
		field.choice { "type", label = "Type woning",
			options = {
				{ "studio", "Studio" },
				{ "appartement", "Appartement" },
				{ "huis", "Huis" },
				{ "kamer", "Kamer" },
			} },
		field.int { "slaapkamers", label = "Aantal slaapkamers", min = 0, max = 20 },
		field.decimal { "huurprijs", label = "Huurprijs per maand", min = 0, unit = "euro" },
		field.choice { "bron", label = "Bron",
			options = {
				{ "immoweb", "Immoweb" },
				{ "andere_site", "Andere website" },
				{ "krant", "Krant" },
				{ "straat", "Op straat" },
				{ "netwerk", "Netwerk" },
				{ "svk", "Sociaal verhuurkantoor" },
			} },
		field.choice { "verhuurder", label = "Verhuurder",
			options = {
				{ "particulier", "Particulier" },
				{ "immokantoor", "Immokantoor" },
				{ "svk", "Sociaal verhuurkantoor" },
				{ "shm", "Sociale huisvestingsmaatschappij" },
			} },

		-- The outcome.
		field.choice { "resultaat", label = "Resultaat",
			options = {
				{ "geen_reactie", "Geen reactie" },
				{ "afgewezen", "Afgewezen" },
				{ "zelf_afgezien", "Zelf afgezien" },
				{ "wachtlijst", "Op de wachtlijst" },
				{ "bezichtiging_gepland", "Bezichtiging gepland" },
				{ "kandidaat_aanvaard", "Kandidatuur aanvaard" },
				{ "contract_getekend", "Contract getekend" },
			} },
		field.choice { "reden_afwijzing", label = "Reden van afwijzing",
			required = when("resultaat", "=", "afgewezen"),
			visible = when("resultaat", "=", "afgewezen"),
			options = {
				{ "inkomen_ocmw", "Inkomen (leefloon of steun van het OCMW)" },
				{ "huisdieren", "Huisdieren" },
				{ "gezinsgrootte", "Gezinsgrootte" },
				{ "discriminatie_vermoed", "Vermoeden van discriminatie" },
				{ "waarborg", "Huurwaarborg" },
				{ "andere", "Andere" },
			} },
		field.text { "signaal_voor_medewerker", label = "Signaal voor de medewerker", multiline = true },
	},
}
