-- contactregistratie — one record per contact between a social worker and a
-- client.  The yearly figures (the jaarcijfers report) count these by place,
-- problem category and detail; `verslag` (what happened, in the social
-- worker's words), `afspraken` and `volgend_contact` are the file itself.
-- Compartment: social.
--
-- Versions: 1 the contact and its classification; 2 adds verslag,
-- afspraken, volgend_contact and the rule that a contact cannot lie in the
-- future (a planned date, volgend_contact, can): `past = true`.

form {
	name = "contactregistratie",
	version = 2,
	compartment = "social",
	label = "Contactregistratie",
	description = "Eén registratie per contact tussen een maatschappelijk assistent en een cliënt.",

	fields = {
		field.date { "datum", label = "Datum", required = true, past = true },
		field.int { "duur_min", label = "Duur (minuten)", min = 0, max = 1440, unit = "min" },
		field.choice { "initiatief", label = "Initiatief",
			options = {
				{ "cliënt", "Cliënt" },
				{ "medewerker", "Medewerker" },
				{ "derde", "Derde" },
			} },
		field.choice { "plaats", label = "Plaats", required = true,
			options = {
				{ "huisbezoek", "Huisbezoek" },
				{ "zitdag", "Zitdag" },
				{ "werkplaats", "Werkplaats" },
				{ "hoofdzetel", "Hoofdzetel" },
				{ "elders", "Elders" },
				{ "telefonisch", "Telefonisch" },
				{ "digitaal", "Digitaal" },
			} },
		field.multi { "problematiek", label = "Problematiek", required = true,
			options = {
				{ "psychosociaal", "Psychosociaal" },
				{ "administratief", "Administratief" },
				{ "gezondheid", "Gezondheid" },
				{ "financieel", "Financieel" },
				{ "materieel", "Materieel" },
				{ "tewerkstelling", "Tewerkstelling" },
			} },
		field.multi { "detail", label = "Detail",
			options = {
				{ "schulden", "Schulden" },
				{ "huisvesting", "Huisvesting" },
				{ "fysieke_gezondheid", "Fysieke gezondheid" },
				{ "psychische_gezondheid", "Psychische gezondheid" },
				{ "burn_out", "Burn-out" },
				{ "stress", "Stress" },
				{ "relationeel", "Relationeel" },
				{ "juridisch", "Juridisch" },
				{ "rouw", "Rouw" },
				{ "werking_sociale_dienst", "Werking sociale dienst" },
			} },
		field.multi { "wijze_van_hulpverlening", label = "Wijze van hulpverlening",
			options = {
				{ "informatie_advies", "Informatie en advies" },
				{ "administratieve_hulp", "Administratieve hulp" },
				{ "psychosociale_begeleiding", "Psychosociale begeleiding" },
				{ "financiele_hulp", "Financiële hulp" },
				{ "materiele_hulp", "Materiële hulp" },
				{ "budgetbegeleiding", "Budgetbegeleiding" },
				{ "doorverwijzing", "Doorverwijzing" },
				{ "bemiddeling", "Bemiddeling" },
			} },
		-- Asked (and required) only when the help given includes a referral.
		field.text { "doorverwezen_naar", label = "Doorverwezen naar", max_length = 200,
			required = when("wijze_van_hulpverlening", "has", "doorverwijzing"),
			visible = when("wijze_van_hulpverlening", "has", "doorverwijzing") },
		field.text { "verslag", label = "Verslag", multiline = true,
			help = "Wat er tijdens het contact gebeurde, in uw eigen woorden." },
		field.text { "afspraken", label = "Afspraken", multiline = true,
			help = "Wat er werd afgesproken, met wie en tegen wanneer." },
		field.date { "volgend_contact", label = "Volgend contact",
			help = "De geplande datum van het volgende contact." },
	},
}
