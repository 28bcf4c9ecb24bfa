// Every text the client itself shows for an error code (Chinese). The gateway's own `message` wins when it
// sends one: these cover codes the client raises itself and answers that never reached the gateway.
const MESSAGES = {
  network_error: '网络连接失败，请检查网络后重试。',
  timeout: '等待超时，请稍后在“我的进度”中查看结果。',
  unauthenticated: '登录已过期，请重新进入小程序。',
  invalid_login_code: '登录凭证无效或已使用，请重新进入小程序。',
  payment_cancelled: '您已取消支付，可再次点击“立即支付”（不会重复扣费）。',
  payment_failed: '支付未成功，请稍后重试；如已扣费请勿重复支付，联系客服处理。',
  camera_denied: '未获得摄像头权限，无法拍摄。请在右上角“…”→“设置”中允许使用摄像头后重试。',
  capture_source_not_accepted: '学校要求使用手机摄像头现场拍摄，不能上传相册照片。',
  album_photo_invalid: '本地照片要求：JPG 格式，宽 480~1350、高 640~1800 像素，大小 50K~1M。',
  quota_exhausted: '今日照片制作次数已用完（每日3次），冷静期24小时后可再次制作。',
  agreement_required: '请先阅读并同意《用户服务协议》和《隐私政策》。',
  consent_required: '请先阅读并同意《用户服务协议》和《隐私政策》。',
  internal_error: '系统繁忙，请稍后再试；如多次出现请联系客服。',
  rate_limited: '操作太频繁，请稍后再试。',
  illegal_transition: '当前进度不能进行此操作，请刷新后查看下一步。',
  order_failed: '下单失败，请稍后再试。',
  subscribe_rejected: '未开启消息通知，审核结果请在“我的进度”中查看。',
}

/** The Chinese message for an error: the gateway's message if it sent one, else ours, else a generic one. */
function messageFor(code, serverMessage) {
  if (serverMessage) return serverMessage
  return MESSAGES[code] || MESSAGES.internal_error
}

module.exports = { MESSAGES, messageFor }
