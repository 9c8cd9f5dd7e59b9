-- N copies of the request, sent as one write (wrk -s pipeline.lua -- N [path]):
-- what benches/http.sh and benches/ab.sh use for their pipelined shapes.
init = function(args)
  local r = {}
  local depth = tonumber(args[1]) or 1
  local path = args[2] or wrk.path
  for i = 1, depth do
    r[i] = wrk.format(nil, path)
  end
  req = table.concat(r)
end

request = function()
  return req
end
