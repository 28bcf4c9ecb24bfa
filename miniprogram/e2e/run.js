// `node e2e/run.js CONFIG.json`: the contract e2e's journeys, one after another (so each step's gateway
// time is its own), against the stack the config names. Prints progress, then one JSON line last:
// {"journeys": N, "passed": N, "final_states": [...], "steps": [...], ...}.
const fs = require('fs')
const { Operator, runJourney } = require('./journeys')

function percentile(values, p) {
  if (!values.length) return null
  const sorted = [...values].sort((a, b) => a - b)
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))
  return Math.round(sorted[i] * 10) / 10
}

async function main() {
  const env = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'))
  const operator = new Operator(env.gateway, env.operator.email, env.operator.password)
  const results = []
  for (const student of env.students) {
    const r = await runJourney(env, student, operator)
    results.push(r)
    console.error(`[client-e2e] ${r.scenario}: ${r.passed ? 'passed' : 'FAILED'} (${r.final_state}, ${r.seconds.toFixed(1)} s, ${r.http_calls} calls)${r.error ? ' ' + r.error : ''}`)
  }
  const names = [...new Set(results.flatMap(r => r.steps.map(s => s.step)))]
  const steps = names.map(step => {
    const rows = results.flatMap(r => r.steps.filter(s => s.step === step))
    const gw = rows.map(s => s.gateway_ms).filter(v => v !== null)
    return {
      step,
      n: rows.length,
      wait_ms_p50: percentile(rows.map(s => s.ms), 50),
      wait_ms_p95: percentile(rows.map(s => s.ms), 95),
      gateway_ms_p50: percentile(gw, 50),
      gateway_ms_p95: percentile(gw, 95),
      calls_p50: percentile(rows.map(s => s.calls), 50),
    }
  })
  const happy = results.filter(r => r.scenario === 'happy')
  const summary = {
    journeys: results.length,
    passed: results.filter(r => r.passed).length,
    final_states: results.map(r => r.final_state),
    scenarios: results.map(r => ({ scenario: r.scenario, passed: r.passed, error: r.error })),
    poll_ms: env.poll_ms || 300,
    per_journey: happy.length
      ? {
          http_calls_p50: percentile(happy.map(r => r.http_calls), 50),
          bytes_sent_p50: percentile(happy.map(r => r.bytes_sent), 50),
          bytes_received_p50: percentile(happy.map(r => r.bytes_received), 50),
          wechat_calls_p50: percentile(happy.map(r => r.wechat_calls), 50),
        }
      : null,
    steps,
  }
  if (env.details) fs.writeFileSync(env.details, JSON.stringify(results, null, 2))
  console.log(JSON.stringify(summary))
  process.exit(summary.passed === summary.journeys ? 0 : 1)
}

main().catch(err => {
  console.error(err)
  console.log(JSON.stringify({ journeys: 0, passed: 0, final_states: [], steps: [], error: String(err) }))
  process.exit(2)
})
