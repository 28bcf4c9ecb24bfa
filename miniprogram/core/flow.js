// Where the student goes next, from the gateway's application view (`GET /application`).
const STATE_LABELS = {
  code_submitted: '正在识别采集码',
  code_rejected: '采集码未通过',
  code_verified: '待确认信息',
  confirmed: '待支付',
  paid: '待拍摄照片',
  submitted: '人像比对中',
  match_failed: '人像比对未通过',
  registrar_review: '已转学籍部门处理',
  in_review: '等待人工审核',
  approved: '审核通过',
  rejected: '审核未通过',
  withdrawn: '已撤回，可重新拍摄提交',
}

/** The page for an application view (or none: the register page). */
function pageFor(view) {
  if (!view) return '/pages/notice/index'
  switch (view.state) {
    case 'code_submitted':
    case 'code_rejected':
      return '/pages/register/index'
    case 'code_verified':
      return '/pages/confirm/index'
    case 'confirmed':
      return '/pages/pay/index'
    case 'paid':
    case 'match_failed':
    case 'rejected':
    case 'withdrawn': {
      const ready = (view.photos || []).filter(p => p.status === 'standardized')
      const last = (view.photos || [])[view.photos.length - 1]
      if (last && last.status === 'processing') return `/pages/result/index?photo_id=${last.photo_id}`
      if (last && ready.includes(last) && view.state === 'paid') return `/pages/result/index?photo_id=${last.photo_id}`
      return '/pages/guide/index'
    }
    default:
      return '/pages/status/index'
  }
}

/** Progress after approval (seed step 14): exported to CHSI, printed, mailed. */
function deliverySteps(delivery) {
  const d = delivery || {}
  return [
    { key: 'exported', label: '已上传学信网', done: Boolean(d.exported_at) },
    { key: 'printed', label: '纸质照片已冲印', done: Boolean(d.printed_at) },
    { key: 'mailed', label: '已邮寄学籍部门', done: Boolean(d.mailed_at) },
  ]
}

module.exports = { STATE_LABELS, pageFor, deliverySteps }
