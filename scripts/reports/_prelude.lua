-- _prelude.lua — helpers every report has, run before the report script.
-- (Embedded with the reports; the leading underscore keeps it out of the
-- list of reports.)  docs/reports.md describes them.

-- The labels of a shipped form, by field path:
--   form_labels("contactregistratie").plaats.label            -> "Plaats"
--   form_labels("contactregistratie").plaats.options.zitdag   -> "Zitdag"
--   form_labels("contactregistratie").plaats.order            -> {"huisbezoek", ...}
-- Fields inside groups are found as "group.field" (for repeating groups
-- too: "actievoorstellen.status").  `fields` lists the top-level paths in
-- form order.
function form_labels(name)
	local out, top = {}, {}
	local function walk(fields, prefix)
		for _, f in ipairs(fields) do
			local path = prefix .. f.name
			local e = { label = f.label, type = f.type, options = {}, order = {},
				repeating = f.repeating, children = {} }
			for _, o in ipairs(f.options or {}) do
				e.options[o.value] = o.label
				e.order[#e.order + 1] = o.value
			end
			for _, sub in ipairs(f.fields or {}) do
				e.children[#e.children + 1] = sub.name
			end
			out[path] = e
			if prefix == "" then top[#top + 1] = path end
			if f.fields then walk(f.fields, path .. ".") end
		end
	end
	walk(schema(name).fields, "")
	out.fields = top
	return out
end

-- counts {value = n} as a list {{value = v, count = n}, ...}, largest
-- first, ties by value.
function ranked(counts)
	local list = {}
	for v, n in pairs(counts or {}) do
		list[#list + 1] = { value = v, count = n }
	end
	table.sort(list, function(a, b)
		if a.count ~= b.count then return a.count > b.count end
		return tostring(a.value) < tostring(b.value)
	end)
	return list
end

-- A shown value of a record by path ("huisvesting.score").
function field(r, path)
	local v = r
	for part in string.gmatch(path, "[^.]+") do
		if type(v) ~= "table" then return nil end
		v = v[part]
	end
	return v
end

-- {"a", "b", "c"} -> "a, b en c" (Dutch enumeration).
function opsomming(list)
	local n = #list
	if n == 0 then return "" end
	if n == 1 then return list[1] end
	return table.concat(list, ", ", 1, n - 1) .. " en " .. list[n]
end

-- Singular or plural by the count: nl.woord(1, "contact", "contacten") ->
-- "contact"; nl.aantal(2329, "contact", "contacten") -> "2.329 contacten".
-- Zero takes the plural, as in Dutch ("0 contacten").
function nl.woord(n, enkelvoud, meervoud)
	return n == 1 and enkelvoud or meervoud
end

function nl.aantal(n, enkelvoud, meervoud)
	return nl.count(n) .. " " .. nl.woord(n, enkelvoud, meervoud)
end

-- The line under a report's title: the organisation (when the store knows
-- it) and the date the report was made, "OCMW Veld · opgemaakt op 07/12/2026".
function opgemaakt()
	local op = "opgemaakt op " .. nl.date(today)
	if organisation then return organisation .. " · " .. op end
	return "Opgemaakt op " .. nl.date(today)
end
