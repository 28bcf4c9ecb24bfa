// A faithful HTML preview of every page: the page's real WXML and logic rendered by miniprogram-simulate
// (j-component, the simulator's own template engine) with the data of a moment of the journey, styled by
// the real app.wxss + page.wxss (rpx at a 375 px wide phone: 1 rpx = 0.5 px). tests/client/screenshots.py
// turns the HTML into PNGs with headless chromium (docs/miniprogram/). Images come from IMAGES (a JSON
// file of {name: path}): a portrait for the camera preview, the standardised and admission photos.
const fs = require('fs')
const path = require('path')
const { JSDOM } = require('jsdom')

const dom = new JSDOM('<!doctype html><html><body></body></html>', { pretendToBeVisual: true })
for (const key of ['window', 'document', 'navigator', 'Node', 'HTMLElement', 'Event', 'CustomEvent', 'MutationObserver', 'getComputedStyle', 'requestAnimationFrame']) {
  if (!(key in global)) global[key] = key in dom.window ? (typeof dom.window[key] === 'function' && key[0] === key[0].toLowerCase() ? dom.window[key].bind(dom.window) : dom.window[key]) : undefined
}

const { fakeWx } = require('../tests/helpers/fake-wx')
const { deps, loadPage } = require('../tests/helpers/page')
const { SCHOOL, STUDENT, view } = require('../tests/fixtures')

const ROOT = path.join(__dirname, '..')
const OUT = process.argv[2] || path.join(ROOT, '..', 'docs', 'miniprogram', 'html')
const IMAGES = process.env.IMAGES ? JSON.parse(fs.readFileSync(process.env.IMAGES, 'utf8')) : {}
const dataUrl = name => (IMAGES[name] ? `data:image/jpeg;base64,${fs.readFileSync(IMAGES[name]).toString('base64')}` : '')

// WXSS -> CSS: rpx to px, the `page` element to body, built-in tags to the simulator's wx-* elements.
const wxss = file =>
  fs
    .readFileSync(file, 'utf8')
    .replace(/(-?\d*\.?\d+)rpx/g, (_, n) => `${Number(n) / 2}px`)
    .replace(/(^|[\s,}])page(?=\s*\{)/g, '$1body')
    .replace(/(^|[\s,}>])(text|input|image|button|view|camera|picker)(?=[\s,{.:])/g, '$1wx-$2')

const BASE_CSS = `
  html, body { margin: 0; width: 375px; font-family: "WenQuanYi Micro Hei", "Noto Sans CJK SC", sans-serif; }
  wx-view, wx-block { display: block; }
  wx-text { display: inline; white-space: pre-wrap; }
  wx-button { display: block; box-sizing: border-box; text-align: center; padding: 0 14px; line-height: 44px; border-radius: 5px; background: #f8f8f8; color: #000; font-size: 17px; margin: 0 auto; }
  wx-button[size="mini"] { display: inline-block; line-height: 28px; font-size: 13px; padding: 0 10px; }
  wx-button[disabled] { opacity: .6; }
  wx-input { display: block; height: 36px; line-height: 36px; color: #1d2330; }
  wx-input.empty { color: #9aa1ae; }
  wx-image { display: inline-block; width: 320px; height: 240px; background-size: cover; background-position: center; }
  wx-camera { display: block; background-size: cover; background-position: center; }
  wx-picker { display: block; }
  .navbar { height: 44px; line-height: 44px; text-align: center; font-size: 17px; color: #fff; background: #1f6fd1; position: relative; }
  .navbar .capsule { position: absolute; right: 7px; top: 7px; width: 87px; height: 30px; border-radius: 15px; border: 1px solid rgba(255,255,255,.5); }
  .statusbar { height: 20px; background: #1f6fd1; color: #fff; font-size: 12px; line-height: 20px; padding: 0 12px; }
`

// The moments shown: page, file name, what the gateway answers, how the student got there.
const MOMENTS = [
  { file: '01-index', page: 'index', routes: { 'POST /api/v1/login': [200, { token: 't', bound: false }], 'GET /api/v1/me': [200, { phone: '138****5678', bound: false, application_id: 'a1' }] }, act: p => p.instance.onLoad() },
  { file: '02-notice', page: 'notice', act: async p => { await p.instance.onLoad(); p.instance.onToggleAgree(); p.instance.onShowDocument({ currentTarget: { dataset: { doc: 'privacy_policy' } } }) } },
  { file: '03-register', page: 'register', store: { consent: {} }, act: async p => { p.instance.onLoad(); fill(p, { name: '赵小明', studentNumber: '2110216052', idLast4: '2(3' }); await p.instance.onScan() } },
  { file: '04-register-refused', page: 'register', store: { consent: {} }, routes: { 'POST /api/v1/codes': [202, { scan_id: 's1', status: 'pending' }], 'GET /api/v1/codes/s1': [200, { status: 'rejected', reason: 'school_mismatch', message: '采集码上的学校与本次采集学校不一致（可能因学籍异动），请到学校学籍部门更新学信网信息后重新下载图像采集码。' }] }, act: async p => { p.instance.onLoad(); fill(p, { name: '赵小明', studentNumber: '2110216052', idLast4: '2(3)' }); await p.instance.onScan() } },
  { file: '05-confirm', page: 'confirm', store: { scan: { student: STUDENT } }, act: p => p.instance.onLoad() },
  { file: '06-pay', page: 'pay', act: async p => { await p.instance.onLoad(); p.instance.setData({ error: '您已取消支付，可再次点击“立即支付”（不会重复扣费）。' }) } },
  { file: '07-guide', page: 'guide', act: p => p.instance.onLoad() },
  { file: '08-guide-camera-only', page: 'guide', school: Object.assign({}, SCHOOL, { capture_sources: ['camera'] }), act: p => p.instance.onLoad() },
  { file: '09-camera-helper', page: 'camera', act: async p => p.instance.onLoad({ helper: '1' }), camera: 'portrait' },
  { file: '10-camera-preview', page: 'camera', act: async p => { p.instance.onLoad({}); await p.instance.onTake() } },
  { file: '11-result-standardised', page: 'result', routes: appRoute(view({ photos: [photo('standardized')], quota: { standardisations_left: 2, reopens_at: null } })), act: p => p.instance.onLoad({ photo_id: 'p1' }) },
  { file: '12-result-refused', page: 'result', routes: appRoute(view({ photos: [photo('rejected', ['headwear', 'mouth_open'], ['请摘下帽子、头饰后重拍。', '请自然闭合嘴巴、表情自然后重拍。'])], quota: { standardisations_left: 0, reopens_at: new Date(Date.now() + (23 * 3600 + 41 * 60 + 7) * 1000).toISOString() } })), act: async p => { await p.instance.onLoad({ photo_id: 'p1' }); p.instance.onUnload() } },
  { file: '13-submit', page: 'submit', act: async p => { await p.instance.onLoad({ photo_id: 'p1' }); p.instance.onToggleConfirm() } },
  { file: '14-submit-not-me', page: 'submit', routes: { 'POST /api/v1/admission-photo/dispute': [202, {}] }, act: async p => { await p.instance.onLoad({ photo_id: 'p1' }); await p.instance.onNotMe() } },
  { file: '15-status-in-review', page: 'status', routes: appRoute(view({ state: 'in_review', next: { action: 'wait', label: '等待人工审核' }, match: { score: 93.4, passed: true, photo_id: 'p1' } })), act: async p => { await p.instance.onShow(); p.instance.onHide() } },
  { file: '16-status-rejected', page: 'status', routes: appRoute(view({ state: 'rejected', next: { action: 'take_photo', label: '审核未通过，可免费重拍提交' }, match: { score: 91.0, passed: true, photo_id: 'p1' }, last_failure: { code: 'review_rejected', message: '审核未通过：背景不是均匀的浅蓝色或有阴影。可免费重拍提交（剩余1次）。' }, resubmissions_left: 1 })), act: p => p.instance.onShow() },
  { file: '17-status-approved', page: 'status', routes: appRoute(view({ state: 'approved', next: { action: 'done', label: '照片已上传学信网，纸质照片已冲印，等待邮寄' }, match: { score: 93.4, passed: true, photo_id: 'p1' }, delivery: { exported_at: 'x', printed_at: 'y', mailed_at: null } })), act: p => p.instance.onShow() },
  { file: '18-me', page: 'me', routes: { 'GET /api/v1/me': [200, { phone: '138****5678', bound: true, student: { masked_name: '赵**', student_number: '21******52', school_name: '示范大学' } }] }, act: p => p.instance.onShow() },
  { file: '19-faq', page: 'faq', act: async p => { await p.instance.onLoad(); p.instance.onToggle({ currentTarget: { dataset: { index: 0 } } }) } },
]

function photo(status, reasons = [], messages = []) {
  return { photo_id: 'p1', status, source: 'camera', uploaded_at: 'x', standardisation_number: 3, reasons, messages, image_url: status === 'standardized' ? '/api/v1/photos/p1/image' : null }
}
function appRoute(v) {
  return { 'GET /api/v1/application': [200, v] }
}
function fill(p, values) {
  for (const [field, value] of Object.entries(values)) p.instance.onInput({ currentTarget: { dataset: { field } }, detail: { value } })
}

/** The rendered tree as plain HTML: wx-image/camera get their pictures, inputs their text. */
function html(root, moment) {
  const clone = root.cloneNode(true)
  const walk = (orig, copy) => {
    const w = orig.__wxElement
    const attrs = Object.fromEntries(((w && w._vt && w._vt.attrs) || []).map(a => [a.name, a.value]))
    for (const name of ['size', 'disabled', 'type']) if (attrs[name] !== undefined && attrs[name] !== false) copy.setAttribute(name, String(attrs[name]))
    if (attrs.disabled === false) copy.removeAttribute('disabled')
    // The simulator writes rpx as px one to one; every inline style of these templates is in rpx.
    if (copy.getAttribute && copy.getAttribute('style')) {
      copy.setAttribute('style', copy.getAttribute('style').replace(/(-?\d*\.?\d+)px/g, (_, n) => `${Number(n) / 2}px`))
    }
    if (w && orig.tagName === 'WX-IMAGE') {
      const src = String(attrs.src || '')
      const name = /admission/.test(src) ? 'admission' : /shot|portrait/.test(src) ? 'portrait' : src ? 'standardised' : ''
      const fit = attrs.mode === 'aspectFill' ? 'cover' : 'contain'
      if (name) copy.setAttribute('style', `${copy.getAttribute('style') || ''};background-image:url(${dataUrl(name)});background-size:${fit};background-repeat:no-repeat;background-position:center`)
    }
    if (orig.tagName === 'WX-CAMERA') copy.setAttribute('style', `background-image:url(${dataUrl(moment.camera || 'portrait')})`)
    if (w && orig.tagName === 'WX-INPUT') {
      const value = attrs.value || ''
      const placeholder = attrs.placeholder || ''
      copy.textContent = value || placeholder
      if (!value) copy.setAttribute('class', `${copy.getAttribute('class') || ''} empty`)
    }
    for (let i = 0; i < orig.children.length; i += 1) walk(orig.children[i], copy.children[i])
  }
  walk(root, clone)
  return clone.outerHTML
}

async function main() {
  fs.mkdirSync(OUT, { recursive: true })
  const appCss = wxss(path.join(ROOT, 'app.wxss'))
  for (const m of MOMENTS) {
    const wx = fakeWx(Object.assign({ 'GET /api/v1/schools/10487': [200, m.school || SCHOOL] }, m.routes || {}))
    const page = loadPage(m.page, deps(wx, { store: Object.assign({}, m.store || {}) }))
    await m.act(page)
    for (let i = 0; i < 30; i += 1) await Promise.resolve()
    const title = JSON.parse(fs.readFileSync(path.join(ROOT, 'pages', m.page, 'index.json'), 'utf8')).navigationBarTitleText
    const pageCss = wxss(path.join(ROOT, 'pages', m.page, 'index.wxss'))
    const body = html(page.dom, m)
    const doc = `<!doctype html><html><head><meta charset="utf-8"><style>${BASE_CSS}${appCss}${pageCss}</style></head><body><div class="statusbar">9:41</div><div class="navbar">${title}<span class="capsule"></span></div>${body}</body></html>`
    fs.writeFileSync(path.join(OUT, `${m.file}.html`), doc)
    page.detach()
  }
  console.log(JSON.stringify({ pages: MOMENTS.map(m => m.file), out: OUT }))
}

main().catch(err => {
  console.error(err)
  process.exit(1)
})
