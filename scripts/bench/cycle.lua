-- wrk script: each thread cycles through the request paths listed in the file named by
-- the PATHS environment variable (one path per line), so every request can carry its own
-- meeting ID and checksum.
local paths = {}
local i = 0

function init(args)
  for line in io.lines(os.getenv("PATHS")) do
    paths[#paths + 1] = line
  end
  -- Start each thread at a different offset so threads do not repeat each other.
  i = math.random(#paths)
end

function request()
  i = i + 1
  if i > #paths then i = 1 end
  return wrk.format("GET", paths[i])
end
