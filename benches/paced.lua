-- Paced keep-alive load (wrk -s paced.lua -- MS [path]): each connection
-- waits MS milliseconds after every response before its next request, so
-- two servers that both keep up see the same offered load. wrk is
-- closed-loop: unpaced, a faster server makes wrk itself the bottleneck,
-- and on a machine wrk shares with the server the latency wrk reports then
-- includes wrk's own wait for a CPU. What benches/http.sh and benches/ab.sh
-- use for their paced shapes.
init = function(args)
  pause = tonumber(args[1]) or 1
  local path = args[2] or wrk.path
  req = wrk.format(nil, path)
end

request = function()
  return req
end

delay = function()
  return pause
end
