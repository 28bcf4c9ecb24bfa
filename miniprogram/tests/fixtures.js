// What the gateway answers, shaped as its OpenAPI document says (services/gateway/api/*.py).
const SCHOOL = {
  school_code: '10487',
  name: '示范大学',
  notice: '请在小程序中操作，只能在手机上操作。',
  agreement: '《用户服务协议》：本服务提供图像采集……',
  privacy_policy: '《隐私政策》：您的姓名、学号……',
  policy_version: '2026-01',
  faq: [{ question: '证件号后4位怎么填？', answer: '输入采集码上证件号码星号后面的字符，如有括号也包含在内。' }],
  support: { phone: '027-87885551', hours: '周一至周五 8:30-12:00 14:00-17:30', qq: '78284566' },
  graduation_years: [
    { code: '2025', label: '普通本专科_2025届毕业生' },
    { code: '2024', label: '普通本专科_2024届毕业生' },
  ],
  mailing_options: [
    { code: 'registrar', label: '直接邮寄学校学籍部门' },
    { code: 'self_pickup', label: '学籍部门统一领取' },
  ],
  fee_fen: 3500,
  service_items: [{ name: '图像采集', included: true }, { name: '人工审核', included: true }, { name: '加急', included: false }],
  capture_sources: ['camera', 'album'],
  subscribe_templates: { payment: ['demo_order_paid'], submission: ['demo_match_result', 'demo_review_result'] },
}

const STUDENT = {
  chsi_id: 'c1',
  masked_name: '赵**',
  student_number: '2110216052',
  id_last4: '2(3)',
  school_code: '10487',
  school_name: '示范大学',
  education_category: '普通本专科',
  level: '专科',
  department: '临床医学院',
  class_name: '2021级口腔医学16班',
}

function view(over = {}) {
  return Object.assign(
    {
      application_id: 'a1',
      state: 'paid',
      next: { action: 'take_photo', label: '拍摄或上传照片' },
      last_failure: null,
      student: STUDENT,
      confirmation: null,
      order: { out_trade_no: 'T1', amount_fen: 3500, status: 'paid' },
      photos: [],
      quota: { standardisations_left: 3, reopens_at: null },
      match: null,
      resubmissions_left: 2,
      updated_at: '2026-01-01T00:00:00+00:00',
      delivery: null,
    },
    over,
  )
}

module.exports = { SCHOOL, STUDENT, view }
