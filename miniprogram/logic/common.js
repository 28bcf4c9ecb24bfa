// What every page's logic shares: loading the school configuration once, and errors shown as messages.
const { messageFor } = require('../core/messages')

/** The school's public configuration (notice, policies, options, capture sources, templates, FAQ). */
async function loadSchool({ api, store, config }, schoolCode) {
  const code = schoolCode || (store.student && store.student.school_code) || config.schoolCode
  if (store.school && store.school.school_code === code) return store.school
  store.school = await api.call('GET', `/api/v1/schools/${encodeURIComponent(code)}`, { auth: false })
  return store.school
}

/** The text to show for any error a handler caught. */
function errorText(err) {
  if (!err) return ''
  return err.message && /[\u4e00-\u9fa5]/.test(err.message) ? err.message : messageFor(err.code)
}

/** Capture sources the school accepts (camera, album); both when the gateway does not say. */
function captureSources(school) {
  const sources = school && Array.isArray(school.capture_sources) ? school.capture_sources : null
  return sources && sources.length ? sources : ['camera', 'album']
}

function templates(school, moment) {
  const t = (school && school.subscribe_templates) || {}
  return Array.isArray(t[moment]) ? t[moment] : []
}

module.exports = { loadSchool, errorText, captureSources, templates }
