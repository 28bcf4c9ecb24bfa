// Render a page's real WXML with its real logic in miniprogram-simulate (j-component on jsdom).
const fs = require('fs')
const path = require('path')
const simulate = require('miniprogram-simulate')
const { createApi } = require('../../core/api')
const config = require('../../config')

const ROOT = path.join(__dirname, '..', '..')

function deps(wx, extra = {}) {
  const api = createApi({ wx, baseUrl: 'https://gw.test', retries: 2, sleep: () => Promise.resolve() })
  return Object.assign({ wx, api, store: {}, config: Object.assign({}, config, { pollIntervalMs: 1 }) }, extra)
}

/** The page `name` with `deps`: `page.instance` runs the logic, `page.dom` is what the student sees. */
function loadPage(name, pageDeps) {
  const definition = require(path.join(ROOT, 'logic', name))(pageDeps)
  const template = fs.readFileSync(path.join(ROOT, 'pages', name, 'index.wxml'), 'utf8')
  const methods = {}
  for (const [key, value] of Object.entries(definition)) if (typeof value === 'function') methods[key] = value
  const id = simulate.load({ template, data: JSON.parse(JSON.stringify(definition.data)), methods })
  const page = simulate.render(id)
  page.attach(document.createElement('parent-wrapper'))
  return page
}

const text = page => page.dom.textContent.replace(/\s+/g, ' ')

/** Let the promise chains started by a handler settle. */
const settle = async (n = 20) => {
  for (let i = 0; i < n; i += 1) await Promise.resolve()
}

module.exports = { deps, loadPage, text, settle }
