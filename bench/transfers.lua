-- wrk script for bench/run: POST /v1/transfers, each with a fresh
-- Idempotency-Key, between random accounts (or from one hot account).
-- Arguments after "--": API key, "random" or "hot", then a file of account
-- ids, one per line (the first is the hot one).
local threads = {}

function setup(thread)
	thread:set("id", #threads + 1)
	table.insert(threads, thread)
end

function init(args)
	key = args[1]
	mode = args[2]
	accounts = {}
	for line in io.lines(args[3]) do
		if line ~= "" then
			accounts[#accounts + 1] = line
		end
	end
	counter = 0
	math.randomseed(os.time() * 1000 + id)
	headers = {
		["Authorization"] = "Bearer " .. key,
		["Content-Type"] = "application/json",
	}
end

function request()
	counter = counter + 1
	local from, to
	if mode == "hot" then
		from = accounts[1]
		to = accounts[math.random(2, #accounts)]
	else
		from = accounts[math.random(1, #accounts)]
		to = accounts[math.random(1, #accounts)]
		while to == from do
			to = accounts[math.random(1, #accounts)]
		end
	end
	headers["Idempotency-Key"] = string.format("b%d-%d-%d", id, counter, math.random(1, 1000000000))
	local body = string.format(
		'{"from_account":"%s","to_account":"%s","amount":1,"currency":"EUR"}', from, to)
	return wrk.format("POST", wrk.path, headers, body)
end
