// The one file to edit to point the mini-program at a gateway (README: "Opening in WeChat DevTools").
// `baseUrl` must be an HTTPS domain listed under 开发管理 → 服务器域名 for a real device; in DevTools,
// tick 「不校验合法域名」 to use http://127.0.0.1:8080 from `make run`.
module.exports = {
  appid: 'wx0000000000000000', // also in project.config.json; the sandbox accepts any appid it was given
  baseUrl: 'http://127.0.0.1:8080',
  schoolCode: '10487', // the school this build collects for (make run's demo school)
  longPollSeconds: 20, // GET /codes/{id}?wait=N (the gateway caps N at 25)
  pollIntervalMs: 1000, // GET /application while a worker runs
  retries: 3, // a request that failed for a transient reason is retried with the same Idempotency-Key
  // Development only: the WeChat sandbox of `make run` (http://127.0.0.1:8090). DevTools' wx.login codes come
  // from the real WeChat, which the sandbox cannot exchange; with this set, the login code is minted by the
  // sandbox for a per-install test openid instead. Leave empty for a real appid.
  sandboxUrl: '',
}
