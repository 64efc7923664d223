-- wrk script: rotate over many requests, one per line of a file: "<path>\t<cookie>" (cookie may be empty).
-- Usage: wrk -s scripts/rotate.lua <url> -- <file>. Headers given with -H (User-Agent) are kept;
-- requests are formatted once at start, so the load generator does no per-request Lua work but an index.
local requests = {}
local n = 0
local i = 0

function init(args)
  for line in io.lines(args[1]) do
    local path, cookie = line:match("^([^\t]+)\t?(.*)$")
    if path then
      local headers = {}
      for name, value in pairs(wrk.headers) do headers[name] = value end
      if cookie ~= "" then headers["Cookie"] = cookie end
      n = n + 1
      requests[n] = wrk.format("GET", path, headers)
    end
  end
  i = math.random(n) - 1  -- threads start at different places of the list
end

function request()
  i = i % n + 1
  return requests[i]
end
