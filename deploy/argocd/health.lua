-- Argo CD health check for clara-operator.io/ClaraInstance.
--
-- Argo CD runs this with gopher-lua (Lua 5.1) and, for a check configured in argocd-cm, only the
-- base, table, package and a reduced os library: no string, math, io or utf8 library and no string
-- methods. So: Lua 5.1 syntax only (no goto, no //, no integer/float distinction), strings joined
-- with `..` and tostring(). The input is the global `obj`; the script returns { status, message }.
--
-- The operator's contract (src/controller/clarainstance/status.ts): status.phase is one of Pending,
-- Queued, Running, Completed, Failed, Aborted, Suspended; the Ready condition is True while the
-- run runs with its agent up or once it completed, False when something blocks or failed it, and
-- Unknown while it waits. status.observedGeneration is the generation that status describes.
-- Tests: health_test.yaml (Argo CD's format) with the objects under testdata/.

local hs = {}

local function readyCondition(status)
  if status.conditions == nil then
    return nil
  end
  for _, condition in ipairs(status.conditions) do
    if condition.type == "Ready" then
      return condition
    end
  end
  return nil
end

-- "Reason: message" of a condition, or the fallback when the condition says nothing.
local function describe(condition, fallback)
  if condition == nil or condition.message == nil or condition.message == "" then
    return fallback
  end
  if condition.reason == nil or condition.reason == "" then
    return condition.message
  end
  return condition.reason .. ": " .. condition.message
end

local status = obj.status
if status == nil or status.phase == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to report a phase"
  return hs
end

-- A status written for an older spec says nothing about the current one.
local generation = obj.metadata.generation
local observed = status.observedGeneration
if generation ~= nil and (observed == nil or observed < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. tostring(generation)
  if observed ~= nil then
    hs.message = hs.message .. " (status is of generation " .. tostring(observed) .. ")"
  end
  return hs
end

local phase = status.phase
local ready = readyCondition(status)
local suspending = obj.spec ~= nil and obj.spec.suspend == true

if phase == "Completed" then
  hs.status = "Healthy"
  hs.message = describe(ready, "Completed: the training run completed")
  return hs
end

if phase == "Failed" or phase == "Aborted" then
  local fallback = phase .. ": the run is " .. (phase == "Failed" and "failed" or "aborted")
  if status.message ~= nil and status.message ~= "" then
    fallback = phase .. ": " .. status.message
  end
  hs.status = "Degraded"
  hs.message = describe(ready, fallback)
  return hs
end

if phase == "Suspended" then
  hs.status = "Suspended"
  hs.message = describe(ready, "Suspended: spec.suspend is true")
  return hs
end

if phase ~= "Pending" and phase ~= "Queued" and phase ~= "Running" then
  hs.status = "Unknown"
  hs.message = "Unknown phase " .. tostring(phase)
  return hs
end

-- Pending, Queued or Running from here on. ClearML out of reach is an outage the operator rides
-- out with backoff, not a fault of this run: Degraded would page people for every blip.
if ready ~= nil and ready.status == "False" and ready.reason == "ClearMLUnavailable" then
  hs.status = "Progressing"
  hs.message = describe(ready, phase .. ": waiting for ClearML")
  return hs
end

if ready ~= nil and ready.status == "False" then
  hs.status = "Degraded"
  hs.message = describe(ready, phase .. ": blocked")
  return hs
end

if suspending then
  hs.status = "Progressing"
  hs.message = "Suspending: waiting for ClearML to stop the " .. phase .. " task"
  return hs
end

if phase == "Running" and ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = describe(ready, "Running: the training run is running")
  return hs
end

hs.status = "Progressing"
hs.message = describe(ready, phase .. ": waiting for the run to start")
return hs
