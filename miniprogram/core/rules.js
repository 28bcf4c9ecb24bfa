// Field rules the client checks before sending anything, the same way the gateway and the codec do.

// 证件号后4位 (seed step 5): "请直接输入采集码上'证件号码'星(*)号后面的字符即可，如果有括号也包含在内。
// 例如：01002(3)，后4位为2(3)。" The codec compares NFKC-normalised, spaces removed, upper case
// (services/codec/payload.normalise_typed_id_last4); the gateway takes at most 8 characters.
const ID_LAST4_HELP = '请输入采集码上“证件号码”星号(*)后面的字符，如有括号也要填写，例如 01002(3) 填 2(3)。'

function normaliseIdLast4(value) {
  return String(value || '')
    .normalize('NFKC')
    .replace(/\s+/g, '')
    .toUpperCase()
}

/** null when the typed value can be an ID tail; else the Chinese reason. */
function checkIdLast4(value) {
  const v = normaliseIdLast4(value)
  if (!v) return `请填写证件号后4位。${ID_LAST4_HELP}`
  if (/[()]/.test(v)) {
    // A bracketed check character (Hong Kong, Macau IDs; 01002(3)): digits then one "(x)" at the end.
    if (!/^[0-9A-Z]{1,3}\([0-9A-Z]\)$/.test(v)) return `括号填写不正确。${ID_LAST4_HELP}`
    return null
  }
  if (!/^[0-9A-Z]{4}$/.test(v)) return `证件号后4位应为4个字符（数字或字母）。${ID_LAST4_HELP}`
  return null
}

function checkName(value) {
  const v = String(value || '').trim()
  if (!v) return '请填写完整姓名。'
  if (v.length > 50) return '姓名过长，请检查。'
  return null
}

function checkStudentNumber(value) {
  const v = String(value || '').trim()
  if (!v) return '请填写学信网学号。'
  if (v === '0') return '学号不能为0：如学信网上学号为空、0或异常，请到学校学籍部门修改后重新下载图像采集码。'
  if (v.length > 32 || !/^[0-9A-Za-z-]+$/.test(v)) return '学号只能包含数字、字母或“-”，请与学信网一致。'
  return null
}

// Local (album) photos, seed step 10: "宽 480~1350，高 640~1800 像素；文件大小 50K-1M，jpg 格式".
// The gateway checks the same limits (settings album_*) before counting a standardisation.
const ALBUM_LIMITS = {
  minWidth: 480,
  maxWidth: 1350,
  minHeight: 640,
  maxHeight: 1800,
  minBytes: 50 * 1024,
  maxBytes: 1024 * 1024,
}

/** The album limits a picked photo breaks, as stable codes (same names as the gateway's `problems`). */
function albumProblems({ width, height, size, type }) {
  const L = ALBUM_LIMITS
  const problems = []
  if (!/^jpe?g$/i.test(String(type || ''))) problems.push('format')
  if (!(size >= L.minBytes && size <= L.maxBytes)) problems.push('file_size')
  if (!(width >= L.minWidth && width <= L.maxWidth)) problems.push('width')
  if (!(height >= L.minHeight && height <= L.maxHeight)) problems.push('height')
  return problems
}

const ALBUM_PROBLEM_TEXT = {
  format: '照片须为 JPG 格式',
  file_size: '文件大小须在 50K~1M 之间',
  width: '宽度须为 480~1350 像素',
  height: '高度须为 640~1800 像素',
}

function albumProblemText(problems) {
  return problems.map(p => ALBUM_PROBLEM_TEXT[p] || p).join('；')
}

// The live guide drawn over the camera, from the CHSI output geometry (教毕指[2017]99号, 480 x 640):
// head top 50-110 px, eyes 200-300 px, face width 180-300 px, centred; the shoulders fill the bottom.
// The camera preview is 3:4 like the output, so the bands scale straight onto it.
const CHSI = { width: 480, height: 640, headTop: [50, 110], eyes: [200, 300], faceWidth: [180, 300], shoulders: 560 }

function guideGeometry(widthRpx = 750) {
  const k = widthRpx / CHSI.width
  const px = v => Math.round(v * k)
  const centre = CHSI.width / 2
  return {
    width: px(CHSI.width),
    height: px(CHSI.height),
    headTop: { top: px(CHSI.headTop[0]), height: px(CHSI.headTop[1] - CHSI.headTop[0]) },
    eyes: { top: px(CHSI.eyes[0]), height: px(CHSI.eyes[1] - CHSI.eyes[0]) },
    faceOuter: { left: px(centre - CHSI.faceWidth[1] / 2), width: px(CHSI.faceWidth[1]) },
    faceInner: { left: px(centre - CHSI.faceWidth[0] / 2), width: px(CHSI.faceWidth[0]) },
    shoulders: { top: px(CHSI.shoulders) },
  }
}

/** "23:59:58" until `reopensAt` (ISO 8601), or '' once it has passed. */
function countdown(reopensAt, nowMs) {
  if (!reopensAt) return ''
  const left = Math.floor((Date.parse(reopensAt) - nowMs) / 1000)
  if (!(left > 0)) return ''
  const h = Math.floor(left / 3600)
  const m = Math.floor((left % 3600) / 60)
  const s = left % 60
  return [h, m, s].map(n => String(n).padStart(2, '0')).join(':')
}

function yuan(fen) {
  return (Number(fen || 0) / 100).toFixed(2)
}

module.exports = {
  ID_LAST4_HELP,
  normaliseIdLast4,
  checkIdLast4,
  checkName,
  checkStudentNumber,
  ALBUM_LIMITS,
  albumProblems,
  albumProblemText,
  CHSI,
  guideGeometry,
  countdown,
  yuan,
}
