-- Runs health.lua on one object the way Argo CD runs a check from argocd-cm, as far as a stock
-- Lua interpreter can: the object is the global `obj`; only the base and table libraries and
-- os.time/os.date are reachable (no string, math, io or utf8 library, no string methods); the
-- chunk's return value must be a table with a valid status.
--
--   lua5.1 run_health.lua health.lua < object.lua
--
-- The object comes on standard input as a Lua table constructor (`{ metadata = { ... }, ... }`);
-- test/unit/argocd/health.test.ts writes it from the YAML files that health_test.yaml names.
-- Prints the status on the first line and the message after it. Works on Lua 5.1 (the dialect of
-- Argo CD's gopher-lua, so `//` and bit operators fail here as they do there; lua5.1 also refuses
-- goto, which gopher-lua accepts) and on Lua 5.4. test/unit/argocd/gopher runs the same way on
-- gopher-lua itself.

local scriptPath = arg[1]
if scriptPath == nil then
  io.stderr:write("usage: run_health.lua HEALTH_LUA < OBJECT\n")
  os.exit(2)
end

local file = assert(io.open(scriptPath, "r"))
local source = file:read("*a")
file:close()
local input = io.read("*a")

local BASE = {
  "assert", "error", "getmetatable", "ipairs", "next", "pairs", "pcall", "print", "rawequal",
  "rawget", "rawset", "select", "setmetatable", "tonumber", "tostring", "type", "unpack", "xpcall",
}
local VALID = {
  Healthy = true, Progressing = true, Degraded = true, Suspended = true, Missing = true,
  Unknown = true,
}

-- Compiles `text` as a chunk whose globals are `env` (setfenv on 5.1, load's env on 5.2+).
local function compile(text, name, env)
  if setfenv ~= nil then
    local chunk, err = loadstring(text, name)
    if chunk ~= nil then setfenv(chunk, env) end
    return chunk, err
  end
  return load(text, name, "t", env)
end

local readObject, objErr = compile("return " .. input, "=object", {})
if readObject == nil then
  io.stderr:write("cannot read the object: " .. objErr .. "\n")
  os.exit(2)
end

local env = { table = table, os = { time = os.time, date = os.date } }
for _, name in ipairs(BASE) do env[name] = _G[name] end
env._G = env
env.obj = readObject()

local health, compileErr = compile(source, "=" .. scriptPath, env)
if health == nil then
  io.stderr:write(compileErr .. "\n")
  os.exit(1)
end

-- Without Argo CD's string library, strings have no methods either.
local stringMeta = getmetatable("")
local stringIndex = stringMeta.__index
stringMeta.__index = nil
local ok, result = pcall(health)
stringMeta.__index = stringIndex

if not ok then
  io.stderr:write(tostring(result) .. "\n")
  os.exit(1)
end
if type(result) ~= "table" then
  io.stderr:write("health.lua returned " .. type(result) .. ", not a table\n")
  os.exit(1)
end
if not VALID[result.status] then
  io.stderr:write("health.lua returned an invalid status: " .. tostring(result.status) .. "\n")
  os.exit(1)
end
io.write(result.status, "\n", result.message or "")
