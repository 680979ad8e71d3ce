-- wrk script: POST a plain search with the key from the environment.
wrk.method = "POST"
wrk.body = '{"query":"metering proxies","numResults":5}'
wrk.headers["content-type"] = "application/json"
local key = os.getenv("TOLLGATE_KEY")
if key and key ~= "" then wrk.headers["authorization"] = "Bearer " .. key end
