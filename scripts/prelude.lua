-- prelude.lua — the Lua half of the form engine.
--
-- Runs in a form's sandbox before the form script (form.c loads it) and
-- installs the form DSL as globals: form, field, when, has, date, euro,
-- decimal.  It returns the engine table, which only the host holds (the
-- registry): finish, scope, schema, message, validate, check, compute.
-- Reading a record against the declarations is the host's (engine.c, in C);
-- this half declares, describes (schema), words the failures (message) and
-- runs the form's computed values and rules.
--
-- Everything the engine relies on is captured as a local before the form
-- script runs, so a form that redefines a global changes nothing here.
-- Messages for form authors are English and carry "file:line"; messages
-- for the people filling a form are Dutch.
--
-- Values handed to rules and computed functions ("r") are the record,
-- nested and typed: groups are tables, repeating groups tables keyed by item
-- id, decimals integers in units of 10^-scale (cents for euro amounts),
-- dates "YYYY-MM-DD" strings, multi-choice values lists.  A value that fails
-- its type check, and every field that is not visible, is nil in r.

local host = ...
local array, where = host.array, host.where
-- bytes of a failure's message and field path as a rule gives them (scripts.h)
local MESSAGE_MAX, PATH_MAX = host.message_max, host.path_max
-- characters of a text field that declares no max_length
local TEXT_MAX = host.text_max

local type, pairs, ipairs, next, error, tostring, tonumber, setmetatable, rawset =
	type, pairs, ipairs, next, error, tostring, tonumber, setmetatable, rawset
local math_type, tointeger = math.type, math.tointeger
local sfind, sformat, ssub, smatch, srep, sbyte =
	string.find, string.format, string.sub, string.match, string.rep, string.byte
local tsort, tunpack = table.sort, table.unpack

local NAME = "^[a-z][a-z0-9_]*$"

-- ---- helpers for authors ---------------------------------------------------

local function author(at, fmt, ...)
	error(at .. ": " .. sformat(fmt, ...), 0)
end

local function show(v)
	if type(v) == "string" then return sformat("%q", v) end
	return tostring(v)
end

-- `s` cut to at most `max` bytes, on a character boundary, "…" marking the cut.
local function cut(s, max)
	if #s <= max then return s end
	local n = max - 3
	while n > 0 and (sbyte(s, n + 1) or 0) & 0xC0 == 0x80 do n = n - 1 end
	return ssub(s, 1, n) .. "…"
end

local function has(list, v)
	if type(list) ~= "table" then return false end
	for _, x in ipairs(list) do
		if x == v then return true end
	end
	return false
end

-- Dates: "YYYY-MM-DD", real calendar dates.
local date = {}

local function leap(y) return (y % 4 == 0 and y % 100 ~= 0) or y % 400 == 0 end
local MDAYS = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 }
local function mdays(y, m) return (m == 2 and leap(y)) and 29 or MDAYS[m] end

function date.parse(s)
	if type(s) ~= "string" then return nil end
	local y, m, d = smatch(s, "^(%d%d%d%d)%-(%d%d)%-(%d%d)$")
	if not y then return nil end
	y, m, d = tointeger(tonumber(y)), tointeger(tonumber(m)), tointeger(tonumber(d))
	if y < 1000 or m < 1 or m > 12 or d < 1 or d > mdays(y, m) then return nil end
	return y, m, d
end

function date.valid(s) return date.parse(s) ~= nil end

local function ymd(y, m, d) return sformat("%04d-%02d-%02d", y, m, d) end

-- Days since 1970-01-01 (proleptic Gregorian; H. Hinnant's days_from_civil).
function date.days(s)
	local y, m, d = date.parse(s)
	if not y then return nil end
	if m <= 2 then y = y - 1 end
	local era = y // 400
	local yoe = y - era * 400
	local mp = (m + 9) % 12
	local doy = (153 * mp + 2) // 5 + d - 1
	local doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
	return era * 146097 + doe - 719468
end

-- The date `n` days after 1970-01-01 (H. Hinnant's civil_from_days).
function date.from_days(n)
	n = n + 719468
	local era = n // 146097
	local doe = n - era * 146097
	local yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
	local y = yoe + era * 400
	local doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
	local mp = (5 * doy + 2) // 153
	local d = doy - (153 * mp + 2) // 5 + 1
	local m = mp < 10 and mp + 3 or mp - 9
	if m <= 2 then y = y + 1 end
	return ymd(y, m, d)
end

function date.add_days(s, n)
	local days = date.days(s)
	if not days then return nil end
	return date.from_days(days + n)
end

-- Add months, clamping the day to the end of the month (31/01 + 1 = 28/02).
function date.add_months(s, n)
	local y, m, d = date.parse(s)
	if not y then return nil end
	local t = y * 12 + (m - 1) + n
	y, m = t // 12, t % 12 + 1
	if d > mdays(y, m) then d = mdays(y, m) end
	return ymd(y, m, d)
end

function date.add_years(s, n) return date.add_months(s, 12 * n) end

function date.year(s)
	local y = date.parse(s)
	return y
end

-- As people read it here: 31/12/2024.
function date.show(s)
	local y, m, d = date.parse(s)
	if not y then return tostring(s) end
	return sformat("%02d/%02d/%04d", d, m, y)
end

-- Decimals: exact, as integers in units of 10^-scale.
local decimal = {}
local POW10 = { [0] = 1, 10, 100, 1000, 10000, 100000, 1000000 }
local DECIMAL_MAX = 2 ^ 53

-- "25630.67", "25630,67", 25630.67 or 25630 -> 2563067 (scale 2); nil if
-- not a number with at most `scale` decimals.
function decimal.parse(v, scale)
	scale = scale or 2
	local p = POW10[scale]
	if math_type(v) == "integer" then
		if v > DECIMAL_MAX // p or v < -(DECIMAL_MAX // p) then return nil end
		return v * p
	elseif math_type(v) == "float" then
		if v ~= v or v > DECIMAL_MAX / p or v < -DECIMAL_MAX / p then return nil end
		local x = v * p
		local r = tointeger(x >= 0 and (x + 0.5) // 1 or -((-x + 0.5) // 1))
		if not r or (x - r > 1e-6 * p) or (r - x > 1e-6 * p) then return nil end
		return r
	elseif type(v) == "string" then
		local sign, int, frac = smatch(v, "^(%-?)(%d+)[%.,]?(%d*)$")
		if not sign or #int + scale > 15 or #frac > scale or (#frac == 0 and sfind(v, "[%.,]$")) then
			return nil
		end
		local n = tointeger(tonumber(int .. frac .. srep("0", scale - #frac)))
		if not n then return nil end
		return sign == "-" and -n or n
	end
	return nil
end

-- 2563067 -> "25630.67" (the JSON form of a decimal)
function decimal.string(n, scale)
	scale = scale or 2
	local p = POW10[scale]
	local a = n < 0 and -n or n
	local s = tostring(a // p)
	if scale > 0 then s = s .. "." .. sformat("%0" .. scale .. "d", a % p) end
	return (n < 0 and "-" or "") .. s
end

-- 2563067 -> "25.630,67" (as people read it here)
function decimal.show(n, scale)
	scale = scale or 2
	local p = POW10[scale]
	local a = n < 0 and -n or n
	local int = tostring(a // p)
	local grouped = int:reverse():gsub("(%d%d%d)", "%1."):reverse()
	if ssub(grouped, 1, 1) == "." then grouped = ssub(grouped, 2) end
	local s = grouped
	if scale > 0 then s = s .. "," .. sformat("%0" .. scale .. "d", a % p) end
	return (n < 0 and "-" or "") .. s
end

local euro = {}
function euro.cents(v) return decimal.parse(v, 2) end
function euro.string(c) return decimal.string(c, 2) end
function euro.show(c) return "€ " .. decimal.show(c, 2) end

-- ---- declarations -------------------------------------------------------------

local KINDS = {
	text = { max_length = true, multiline = true },
	int = { min = true, max = true, unit = true },
	decimal = { min = true, max = true, scale = true, unit = true },
	date = { min = true, max = true, past = true },
	bool = {},
	choice = { options = true },
	multi = { options = true },
	group = { fields = true, repeating = true },
}
local COMMON = { label = true, help = true, required = true, visible = true }
local OPS = { ["="] = true, ["~="] = true, has = true, ["in"] = true }

local declared = setmetatable({}, { __mode = "k" }) -- field spec -> true
local conditions = setmetatable({}, { __mode = "k" }) -- when(...) -> true

local function when(fieldname, op, value)
	local at = where(2)
	if type(fieldname) ~= "string" or not sfind(fieldname, NAME) then
		author(at, "when: the first argument must be a field name, got %s", show(fieldname))
	end
	if not OPS[op] then
		author(at, "when: unknown operator %s (use \"=\", \"~=\", \"has\" or \"in\")", show(op))
	end
	if op == "in" and type(value) ~= "table" then
		author(at, "when: \"in\" needs a list of values")
	end
	local c = { field = fieldname, op = op, value = value, at = at }
	conditions[c] = true
	return c
end

local function condition(v, default, at, name, what)
	if v == nil then return default end
	if type(v) == "boolean" or type(v) == "function" then return v end
	if type(v) == "table" and conditions[v] then return v end
	author(at, "field '%s': %s must be true, false, a function or when(...)", name, what)
end

local function check_options(opts, at, name)
	if type(opts) ~= "table" or #opts == 0 then
		author(at, "field '%s' needs options = { {value, \"Label\"}, ... }", name)
	end
	local seen = {}
	for i, o in ipairs(opts) do
		if type(o) ~= "table" then
			author(at, "field '%s': option %d is not a pair {value, \"Label\"}", name, i)
		end
		local n = 0
		for _ in pairs(o) do n = n + 1 end
		local v, label = o[1], o[2]
		if n ~= 2 or (type(v) ~= "string" and math_type(v) ~= "integer") or type(label) ~= "string" then
			author(at, "field '%s': option %d is not a pair {value, \"Label\"} (value a string or an integer)", name, i)
		end
		if seen[v] then
			author(at, "field '%s': option %s appears twice", name, show(v))
		end
		seen[v] = true
	end
	for k in pairs(opts) do
		if math_type(k) ~= "integer" or k < 1 or k > #opts then
			author(at, "field '%s': options must be a list", name)
		end
	end
	return opts, seen
end

local function declare(kind, spec, at)
	if type(spec) ~= "table" then
		author(at, "field.%s expects a table: field.%s { \"name\", label = \"...\" }", kind, kind)
	end
	local name = spec[1]
	if type(name) ~= "string" or not sfind(name, NAME) then
		author(at, "field.%s: the first entry must be the field name (a-z, 0-9, _), got %s", kind, show(name))
	end
	for k in pairs(spec) do
		if k ~= 1 and not COMMON[k] and not KINDS[kind][k] then
			author(at, "field '%s': unknown option %s for a %s field", name, show(k), kind)
		end
	end
	if type(spec.label) ~= "string" or spec.label == "" then
		author(at, "field '%s' has no label", name)
	end
	if spec.help ~= nil and type(spec.help) ~= "string" then
		author(at, "field '%s': help must be a string", name)
	end
	local f = {
		kind = kind, name = name, label = spec.label, help = spec.help, at = at,
		required = condition(spec.required, false, at, name, "required"),
		visible = condition(spec.visible, true, at, name, "visible"),
	}
	if kind == "text" then
		if spec.max_length ~= nil and (math_type(spec.max_length) ~= "integer" or spec.max_length < 1) then
			author(at, "field '%s': max_length must be a positive integer", name)
		end
		f.max_length, f.multiline = spec.max_length, spec.multiline and true or nil
	elseif kind == "int" then
		for _, k in ipairs({ "min", "max" }) do
			if spec[k] ~= nil and math_type(spec[k]) ~= "integer" then
				author(at, "field '%s': %s must be an integer", name, k)
			end
		end
		f.min, f.max, f.unit = spec.min, spec.max, spec.unit
	elseif kind == "decimal" then
		f.scale = spec.scale or 2
		if math_type(f.scale) ~= "integer" or f.scale < 0 or f.scale > 6 then
			author(at, "field '%s': scale must be an integer from 0 to 6", name)
		end
		for _, k in ipairs({ "min", "max" }) do
			if spec[k] ~= nil then
				f[k] = decimal.parse(spec[k], f.scale)
				if not f[k] then
					author(at, "field '%s': %s is not a number with at most %d decimals", name, k, f.scale)
				end
			end
		end
		f.unit = spec.unit
	elseif kind == "date" then
		for _, k in ipairs({ "min", "max" }) do
			if spec[k] ~= nil and not date.valid(spec[k]) then
				author(at, "field '%s': %s must be a date \"YYYY-MM-DD\"", name, k)
			end
		end
		f.min, f.max = spec.min, spec.max
		-- a date of something that happened: not after ctx.vandaag (true,
		-- or the message to give instead of the usual one)
		if spec.past ~= nil and type(spec.past) ~= "boolean" and (type(spec.past) ~= "string" or spec.past == "") then
			author(at, "field '%s': past must be true, false or a message", name)
		end
		f.past = spec.past or nil
	elseif kind == "choice" or kind == "multi" then
		f.options, f.option_set = check_options(spec.options, at, name)
	elseif kind == "group" then
		if type(spec.fields) ~= "table" or #spec.fields == 0 then
			author(at, "group '%s' needs fields = { field.<type>{...}, ... }", name)
		end
		f.repeating = spec.repeating and true or false
		f.fields = spec.fields
	end
	if f.min ~= nil and f.max ~= nil and f.min > f.max then
		author(at, "field '%s': min is larger than max", name)
	end
	declared[f] = true
	return f
end

local field = setmetatable({}, {
	__index = function(_, kind)
		error(sformat("unknown field type %s (known: text, int, decimal, date, bool, choice, multi, group)",
			show(kind)), 2)
	end,
	__newindex = function() error("field types cannot be changed", 2) end,
})
for kind in pairs(KINDS) do
	rawset(field, kind, function(spec) return declare(kind, spec, where(2)) end)
end

-- The checked fields of one scope (top level, a group): a list plus an index.
local function scope_of(list, at, what)
	local byname = {}
	for i, f in ipairs(list) do
		if not declared[f] then
			author(at, "%s: entry %d is not a field.<type>{...} declaration", what, i)
		end
		if byname[f.name] then
			author(f.at, "duplicate field '%s' (first declared at %s)", f.name, byname[f.name].at)
		end
		byname[f.name] = f
	end
	for k in pairs(list) do
		if math_type(k) ~= "integer" or k < 1 or k > #list then
			author(at, "%s must be a list of fields", what)
		end
	end
	for _, f in ipairs(list) do
		for _, key in ipairs({ "required", "visible" }) do
			local c = f[key]
			if type(c) == "table" then
				local target = byname[c.field]
				if not target or target == f then
					author(c.at, "field '%s': when(%s, ...) names no other field of the same group", f.name, show(c.field))
				end
				if c.op == "has" and target.kind ~= "multi" then
					author(c.at, "field '%s': when(..., \"has\", ...) needs a multi-choice field, '%s' is %s",
						f.name, c.field, target.kind)
				end
				local values = c.op == "in" and c.value or { c.value }
				if target.option_set then
					for _, v in ipairs(values) do
						if not target.option_set[v] then
							author(c.at, "field '%s': %s is not an option of '%s'", f.name, show(v), c.field)
						end
					end
				end
			end
		end
		if f.kind == "group" then
			f.scope = scope_of(f.fields, f.at, "group '" .. f.name .. "'")
		end
	end
	return { list = list, byname = byname }
end

-- The dates declared `past`, each as the chain of declarations from the top
-- level down to it (groups first), collected once when the form loads.
local function past_fields(list, chain, out)
	for _, f in ipairs(list) do
		local c = { tunpack(chain) }
		c[#c + 1] = f
		if f.kind == "date" and f.past then
			out[#out + 1] = c
		elseif f.kind == "group" then
			past_fields(f.fields, c, out)
		end
	end
	return out
end

-- ---- the form -------------------------------------------------------------------

local FORM_KEYS = { name = true, version = true, compartment = true, label = true, description = true,
	previous = true, renamed = true,
	fields = true, rules = true, computed = true, params = true }
local F -- the declared form

-- renamed = { [3] = { oud = "nieuw" } }: version 3 renamed field `oud` to
-- `nieuw`; a record written with an older version reads `oud` (and the
-- fields under it, for a group) as `nieuw`.  Top-level fields: `nieuw` is
-- declared, `oud` no longer is.  A sorted list of {version, from, to}.
local function renamed_of(spec, scope, at)
	local out = array({})
	if spec.renamed == nil then return out end
	if type(spec.renamed) ~= "table" then author(at, "form '%s': renamed must be a table", spec.name) end
	for v, map in pairs(spec.renamed) do
		if math_type(v) ~= "integer" or v < 2 or v > spec.version or type(map) ~= "table" then
			author(at, "form '%s': renamed[%s] must be a version from 2 to %d: { old = \"new\" }", spec.name, show(v),
				spec.version)
		end
		for old, new in pairs(map) do
			if type(old) ~= "string" or not sfind(old, NAME) or type(new) ~= "string" or not scope.byname[new] then
				author(at, "form '%s': renamed %s must name a field of this version", spec.name, show(old))
			end
			if scope.byname[old] then author(at, "form '%s': renamed field '%s' is still declared", spec.name, old) end
			out[#out + 1] = { version = v, from = old, to = new }
		end
	end
	tsort(out, function(a, b) return a.version < b.version or (a.version == b.version and a.from < b.from) end)
	return out
end

local function form(spec)
	local at = where(2)
	if F then author(at, "form{} is declared twice (first at %s)", F.at) end
	if type(spec) ~= "table" then author(at, "form expects a table: form { name = ..., ... }") end
	for k in pairs(spec) do
		if not FORM_KEYS[k] then author(at, "form: unknown key %s", show(k)) end
	end
	if type(spec.name) ~= "string" or not sfind(spec.name, NAME) then
		author(at, "form: name is missing or not a name (a-z, 0-9, _)")
	end
	if math_type(spec.version) ~= "integer" or spec.version < 1 then
		author(at, "form '%s': version is missing or not a positive integer", spec.name)
	end
	if type(spec.compartment) ~= "string" or not sfind(spec.compartment, NAME) then
		author(at, "form '%s': compartment is missing (e.g. \"social\" or \"huiswijs\")", spec.name)
	end
	if type(spec.label) ~= "string" or spec.label == "" then
		author(at, "form '%s': label is missing", spec.name)
	end
	if type(spec.fields) ~= "table" or #spec.fields == 0 then
		author(at, "form '%s': fields is missing or empty", spec.name)
	end
	local scope = scope_of(spec.fields, at, "fields")
	local rules = spec.rules or {}
	if type(rules) ~= "table" then author(at, "form '%s': rules must be a list of functions", spec.name) end
	for i, r in pairs(rules) do
		if math_type(i) ~= "integer" or type(r) ~= "function" then
			author(at, "form '%s': rule %s is not a function", spec.name, show(i))
		end
	end
	local computed = spec.computed or {}
	if type(computed) ~= "table" then author(at, "form '%s': computed must be a table of functions", spec.name) end
	local cnames = {}
	for k, fn in pairs(computed) do
		if type(k) ~= "string" or not sfind(k, NAME) or type(fn) ~= "function" then
			author(at, "form '%s': computed %s must be name = function(r, ctx) ... end", spec.name, show(k))
		end
		if scope.byname[k] then
			author(at, "form '%s': computed '%s' has the name of a field", spec.name, k)
		end
		cnames[#cnames + 1] = k
	end
	tsort(cnames)
	if spec.params ~= nil and type(spec.params) ~= "table" then
		author(at, "form '%s': params must be a table", spec.name)
	end
	if spec.previous ~= nil and type(spec.previous) ~= "boolean" then
		author(at, "form '%s': previous must be true or false", spec.name)
	end
	local renamed = renamed_of(spec, scope, at)
	if spec.description ~= nil and type(spec.description) ~= "string" then
		author(at, "form '%s': description must be a string", spec.name)
	end
	F = {
		at = at, name = spec.name, version = spec.version, compartment = spec.compartment,
		label = spec.label, description = spec.description, scope = scope, rules = rules,
		computed = computed, cnames = cnames, params = spec.params or {}, previous = spec.previous == true,
		renamed = renamed,
		past = past_fields(scope.list, {}, {}),
	}
end

-- ---- schema --------------------------------------------------------------------------

local function cond_schema(c)
	if type(c) == "boolean" then return c end
	if type(c) == "function" then return { computed = true } end
	local value = c.value
	if c.op == "in" then value = array({ tunpack(c.value) }) end
	return { when = { field = c.field, op = c.op, value = value } }
end

local function fields_schema(list)
	local out = array({})
	for i, f in ipairs(list) do
		local s = { name = f.name, type = f.kind, label = f.label, help = f.help,
			required = cond_schema(f.required), visible = cond_schema(f.visible) }
		if f.kind == "text" then
			s.max_length, s.multiline = f.max_length, f.multiline
		elseif f.kind == "int" then
			s.min, s.max, s.unit = f.min, f.max, f.unit
		elseif f.kind == "decimal" then
			s.scale, s.unit = f.scale, f.unit
			s.min = f.min and decimal.string(f.min, f.scale)
			s.max = f.max and decimal.string(f.max, f.scale)
		elseif f.kind == "date" then
			s.min, s.max, s.past = f.min, f.max, f.past and true or nil
		elseif f.kind == "choice" or f.kind == "multi" then
			s.options = array({})
			for j, o in ipairs(f.options) do s.options[j] = { value = o[1], label = o[2] } end
		elseif f.kind == "group" then
			s.repeating = f.repeating
			s.fields = fields_schema(f.fields)
		end
		out[i] = s
	end
	return out
end

local function schema()
	return {
		name = F.name, version = F.version, compartment = F.compartment, label = F.label,
		description = F.description, fields = fields_schema(F.scope.list),
		computed = array({ tunpack(F.cnames) }), rules = #F.rules,
		renamed = #F.renamed > 0 and F.renamed or nil,
	}
end

-- ---- reading a record ------------------------------------------------------------------

local function number_show(f, n)
	if f.kind == "decimal" then
		return f.unit == "euro" and euro.show(n) or decimal.show(n, f.scale)
	end
	return tostring(n)
end

-- Reading a record (types, visibility, required fields, unknown paths) is
-- done by the host in C (engine.c) from the declarations in F.scope; it
-- asks for the Dutch text of a failure here, by code.  `label` is the
-- field's label with its groups' labels before it ("Huisvesting – Score").
local MESSAGES = {
	text = "%s moet tekst zijn.",
	max_length = "%s mag hoogstens %d tekens bevatten.",
	int = "%s moet een geheel getal zijn.",
	decimal = "%s moet een getal zijn met hoogstens %d cijfers na de komma.",
	date = "%s moet een geldige datum zijn (JJJJ-MM-DD).",
	date_min = "%s mag niet vóór %s liggen.",
	date_max = "%s mag niet na %s liggen.",
	past = "%s kan niet in de toekomst liggen.",
	min = "%s moet minstens %s zijn.",
	max = "%s mag hoogstens %s zijn.",
	bool = "%s moet ja of nee zijn.",
	choice = "%s is geen geldige keuze.",
	list = "%s moet een lijst van keuzes zijn.",
	twice = "%s bevat een keuze meer dan één keer.",
	shape = "%s heeft een ongeldige vorm.",
	keys = "%s moet items met een sleutel bevatten.",
	item_key = "%s: een item heeft een ongeldige sleutel.",
	item_shape = "%s: een item heeft een ongeldige vorm.",
	required = "%s is verplicht.",
	items = "%s: voeg minstens één item toe.",
	hidden = "%s wordt niet gevraagd en moet leeg blijven.",
	unknown = "Onbekend veld in versie %d van dit formulier.",
}

-- A message names the field (its label) and what is wrong, never the value:
-- what reaches an error carries no data of the client.
local function message(code, label, f)
	local fmt = MESSAGES[code]
	if code == "unknown" then return sformat(fmt, F.version) end
	if code == "max_length" then return sformat(fmt, label, f.max_length or TEXT_MAX) end
	if code == "decimal" then
		if f.scale == 0 then return sformat(MESSAGES.int, label) end
		return sformat(fmt, label, f.scale)
	end
	if code == "min" or code == "max" then
		if f.kind == "date" then return sformat(MESSAGES["date_" .. code], label, date.show(f[code])) end
		return sformat(fmt, label, number_show(f, f[code]))
	end
	return sformat(fmt, label)
end

-- The context handed to rules and computed values: the host's (with
-- "vorige" read like a record) and the form's parameters.
local function context(c)
	c.params = F.params
	return c
end

local function compute_all(r, c)
	local out = {}
	for _, name in ipairs(F.cnames) do
		out[name] = F.computed[name](r, c)
	end
	return out
end

-- A date declared `past` (the chain of past_fields, at chain[i] in `t`)
-- that lies after `vandaag` fails: every item of a repeating group, in id
-- order, the path and label made as the host makes them.
local function check_past(t, chain, i, path, label, vandaag, err)
	local f = chain[i]
	local v = t[f.name]
	path = path .. f.name
	label = label and (label .. " – " .. f.label) or f.label
	if i == #chain then
		if type(v) == "string" and v > vandaag then
			err(path, type(f.past) == "string" and f.past or sformat(MESSAGES.past, label))
		end
	elseif type(v) == "table" and f.repeating then
		local ids = {}
		for id in pairs(v) do ids[#ids + 1] = id end
		tsort(ids)
		for _, id in ipairs(ids) do
			check_past(v[id], chain, i + 1, path .. "." .. id .. ".", label, vandaag, err)
		end
	elseif type(v) == "table" then
		check_past(v, chain, i + 1, path .. ".", label, vandaag, err)
	end
end

-- ---- the engine (held by the host) ------------------------------------------------------

local engine = {}

function engine.finish()
	if not F then error("the script declares no form: call form { name = ..., ... }", 0) end
	return F.name, F.version, F.compartment, F.label, F.previous
end

engine.schema = schema

-- validate: `r` the typed record and `errors` the failures the host found
-- reading it; the rules add theirs.  `on_computed` (the host's, for a
-- check) receives the computed values as soon as they are known, before
-- any rule runs.
local function validate(r, c, errors, on_computed)
	c = context(c)
	c.computed = compute_all(r, c)
	if on_computed then on_computed(c.computed) end
	local function err(path, message)
		if type(path) ~= "string" or type(message) ~= "string" then
			error("err(field, message): both must be strings", 2)
		end
		-- bounded whatever a rule builds: a message is a line, not a value
		errors[#errors + 1] = { field = cut(path, PATH_MAX), message = cut(message, MESSAGE_MAX) }
	end
	if type(c.vandaag) == "string" then
		for _, chain in ipairs(F.past) do
			check_past(r, chain, 1, "", nil, c.vandaag, err)
		end
	end
	for _, rule in ipairs(F.rules) do
		rule(r, err, c)
	end
	return errors
end

engine.validate = validate
engine.check = validate -- with on_computed: validate and compute in one pass
engine.message = message

function engine.compute(r, c)
	return compute_all(r, context(c))
end

function engine.scope() return F.scope end

-- ---- the DSL as globals -------------------------------------------------------------------

_G.form, _G.field, _G.when, _G.has = form, field, when, has
_G.date, _G.decimal, _G.euro = date, decimal, euro

return engine
