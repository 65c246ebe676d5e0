-- wrk script: POST the smallest QR job body, as JSON.
wrk.method = "POST"
wrk.body = '{"data":"https://example.com/x"}'
wrk.headers["Content-Type"] = "application/json"
