const { fakeWx } = require('./helpers/fake-wx')
const { deps, loadPage, text, settle } = require('./helpers/page')
const { SCHOOL, STUDENT, view } = require('./fixtures')

const schoolRoute = (school = SCHOOL) => ({ 'GET /api/v1/schools/10487': [200, school] })

describe('home (steps 1-3)', () => {
  test('logs in, shows the school and the entry; the phone code goes to the gateway', async () => {
    const wx = fakeWx({
      'POST /api/v1/login': [200, { token: 't', bound: true, student: { masked_name: '赵**', school_name: '示范大学', student_number: '21****52', school_code: '10487' } }],
      'GET /api/v1/me': [200, { phone: null, bound: true, application_id: 'a1' }],
      'POST /api/v1/me/phone': [200, { phone: '138****5678' }],
      ...schoolRoute(),
    })
    const page = loadPage('index', deps(wx))
    await page.instance.onLoad()
    expect(text(page)).toContain('示范大学')
    expect(text(page)).toContain('学信网采集码采集')
    expect(text(page)).toContain('我的进度')
    expect(text(page)).toContain('授权手机号')
    await page.instance.onPhone({ detail: { code: 'phone-code' } })
    expect(wx.calls.find(c => c.url.endsWith('/me/phone')).data).toEqual({ code: 'phone-code' })
    expect(text(page)).toContain('138****5678')
    await page.instance.onPhone({ detail: { errMsg: 'getPhoneNumber:fail user deny' } })
    expect(text(page)).toContain('未授权手机号')
  })

  test('a used login code shows the gateway message', async () => {
    const wx = fakeWx({ 'POST /api/v1/login': [400, { code: 'invalid_login_code', message: '登录凭证无效或已使用，请重新进入小程序。' }] })
    const page = loadPage('index', deps(wx))
    await page.instance.onLoad()
    expect(text(page)).toContain('登录凭证无效或已使用')
  })
})

describe('notice and consent (step 1, 4)', () => {
  test('nothing personal is sent before consent; consent carries the policy version', async () => {
    const wx = fakeWx({ ...schoolRoute(), 'POST /api/v1/consents': [201, { policy_version: '2026-01' }] })
    const d = deps(wx)
    const page = loadPage('notice', d)
    await page.instance.onLoad()
    expect(text(page)).toContain('请在小程序中操作')
    expect(text(page)).toContain('版本 2026-01')
    await page.instance.onContinue()
    expect(text(page)).toContain('请先阅读并勾选同意')
    expect(wx.calls.filter(c => c.method === 'POST')).toHaveLength(0)
    page.querySelector('.check').dispatchEvent('tap')
    await settle()
    await page.instance.onContinue()
    const consent = wx.calls.find(c => c.url.endsWith('/consents'))
    expect(consent.data).toEqual({ school_code: '10487', policy_version: '2026-01' })
    expect(wx.navigations).toEqual(['/pages/register/index'])
    expect(d.store.consent).toEqual({ policy_version: '2026-01' })
  })
})

describe('register and the code (steps 5-6)', () => {
  const fill = async (page, values) => {
    for (const [field, value] of Object.entries(values)) {
      page.instance.onInput({ currentTarget: { dataset: { field } }, detail: { value } })
    }
    await settle()
  }

  test('validates like the server before anything is sent, the bracket rule explained', async () => {
    const wx = fakeWx({})
    const page = loadPage('register', deps(wx, { store: { consent: {} } }))
    page.instance.onLoad()
    await fill(page, { name: '赵小明', studentNumber: '0', idLast4: '2(3' })
    await page.instance.onScan()
    expect(text(page)).toContain('学号为空、0或异常')
    expect(text(page)).toContain('括号填写不正确')
    expect(text(page)).toContain('01002(3) 填 2(3)')
    expect(wx.calls).toHaveLength(0)
  })

  test('scan -> long poll -> decoded -> confirm page', async () => {
    const wx = fakeWx({
      'POST /api/v1/codes': [202, { scan_id: 's1', status: 'pending', status_url: '/api/v1/codes/s1', application_id: 'a1' }],
      'GET /api/v1/codes/s1': [200, { scan_id: 's1', status: 'decoded', student: STUDENT }],
      ...schoolRoute(),
    })
    const d = deps(wx, { store: { consent: {} } })
    const page = loadPage('register', d)
    page.instance.onLoad()
    await fill(page, { name: '赵小明', studentNumber: '2110216052', idLast4: '2（3）' })
    await page.instance.onScan()
    const post = wx.calls.find(c => c.method === 'POST')
    expect(post.data).toEqual({ name: '赵小明', student_number: '2110216052', id_last4: '2(3)', agreed: true, qr_text: 'QR-TEXT', school_code: '10487' })
    expect(post.header['Idempotency-Key']).toMatch(/^[0-9a-f]{32}$/)
    expect(wx.calls.find(c => c.url.includes('/codes/s1')).url).toContain('?wait=20')
    expect(wx.navigations).toEqual(['/pages/confirm/index'])
    expect(d.store.student).toEqual(STUDENT)
  })

  test('the album image goes up as multipart; a refusal is shown as the gateway words it, 重新读取 resets', async () => {
    const wx = fakeWx({
      'POST /api/v1/codes': [202, { scan_id: 's2', status: 'pending', status_url: '/x', application_id: 'a1' }],
      'GET /api/v1/codes/s2': [200, { scan_id: 's2', status: 'rejected', reason: 'school_mismatch', message: '采集码上的学校与本次采集学校不一致（可能因学籍异动）' }],
    })
    const page = loadPage('register', deps(wx, { store: { consent: {} } }))
    page.instance.onLoad()
    await fill(page, { name: '赵小明', studentNumber: '2110216052', idLast4: '2(3)' })
    await page.instance.onUpload()
    const up = wx.calls.find(c => c.api === 'uploadFile')
    expect(up.filePath).toBe('wxfile://album.jpg')
    expect(up.formData).toMatchObject({ agreed: 'true', id_last4: '2(3)' })
    expect(text(page)).toContain('采集码未通过')
    expect(text(page)).toContain('可能因学籍异动')
    page.querySelector('.card .btn-plain').dispatchEvent('tap')
    await settle()
    expect(text(page)).not.toContain('采集码未通过')
  })

  test('without the agreement ticked nothing is sent', async () => {
    const wx = fakeWx({})
    const page = loadPage('register', deps(wx))
    page.instance.onLoad()
    await fill(page, { name: '赵小明', studentNumber: '2110216052', idLast4: '2(3)' })
    await page.instance.onUpload()
    expect(text(page)).toContain('请先阅读并同意')
    expect(wx.calls).toHaveLength(0)
  })
})

describe('confirm (step 6)', () => {
  test('shows the decoded data and sends the chosen year and mailing method', async () => {
    const wx = fakeWx({ ...schoolRoute(), 'POST /api/v1/application/confirm': [200, {}] })
    const page = loadPage('confirm', deps(wx, { store: { scan: { student: STUDENT } } }))
    await page.instance.onLoad()
    for (const s of ['赵**', '2110216052', '2(3)', '临床医学院', '2021级口腔医学16班', '普通本专科_2025届毕业生', '直接邮寄学校学籍部门', '重新读取']) {
      expect(text(page)).toContain(s)
    }
    page.instance.onYear({ detail: { value: '1' } })
    await page.instance.onConfirm()
    expect(wx.calls.find(c => c.method === 'POST').data).toEqual({ graduation_year: '2024', mailing_method: 'registrar' })
    expect(wx.navigations).toEqual(['/pages/pay/index'])
  })
})

describe('pay (step 7)', () => {
  test('subscribe asked inside the tap before anything; a cancelled payment retried with the same order', async () => {
    let pays = 0
    const order = { out_trade_no: 'T1', amount_fen: 3500, status: 'pending', payment: { timeStamp: '1', nonceStr: 'n', package: 'prepay_id=p', signType: 'RSA', paySign: 's' } }
    const wx = fakeWx(
      { ...schoolRoute(), 'POST /api/v1/orders': [201, order], 'GET /api/v1/application': [200, view()] },
      {
        requestPayment(o) {
          wx.calls.push({ api: 'requestPayment', params: o })
          if (pays++ === 0) o.fail({ errMsg: 'requestPayment:fail cancel' })
          else o.success({})
        },
      },
    )
    const page = loadPage('pay', deps(wx))
    await page.instance.onLoad()
    expect(text(page)).toContain('¥35.00')
    expect(text(page)).toContain('图像采集')
    expect(text(page)).not.toContain('加急')
    const before = wx.calls.length
    await page.instance.onPay()
    expect(wx.calls[before].api).toBe('requestSubscribeMessage')
    expect(wx.calls.find(c => c.api === 'requestSubscribeMessage').tmplIds).toEqual(['demo_order_paid'])
    expect(text(page)).toContain('您已取消支付')
    await page.instance.onPay()
    expect(wx.navigations).toEqual(['/pages/guide/index'])
    const orders = wx.calls.filter(c => c.url && c.url.endsWith('/orders'))
    expect(orders).toHaveLength(2)
    expect(orders[0].header['Idempotency-Key']).toBe(orders[1].header['Idempotency-Key'])
    const params = wx.calls.filter(c => c.api === 'requestPayment').map(c => c.params.package)
    expect(params).toEqual(['prepay_id=p', 'prepay_id=p'])
  })

  test('an order the gateway refuses shows its message', async () => {
    const wx = fakeWx({ ...schoolRoute(), 'POST /api/v1/orders': [502, { code: 'order_failed', message: '下单失败，请稍后再试。' }] })
    const page = loadPage('pay', deps(wx))
    await page.instance.onLoad()
    await page.instance.onPay()
    expect(text(page)).toContain('下单失败，请稍后再试。')
    expect(wx.calls.filter(c => c.url && c.url.endsWith('/orders'))).toHaveLength(1)
  })
})

describe('guide and album (steps 8-10)', () => {
  test('camera-only schools get no album button', async () => {
    const wx = fakeWx(schoolRoute({ ...SCHOOL, capture_sources: ['camera'] }))
    const page = loadPage('guide', deps(wx))
    await page.instance.onLoad()
    expect(text(page)).not.toContain('从相册选择')
    expect(text(page)).toContain('学校要求使用手机摄像头现场拍摄')
    await page.instance.onAlbum()
    expect(wx.calls.filter(c => c.api === 'uploadFile')).toHaveLength(0)
  })

  test('album photos outside the limits are refused before upload', async () => {
    const wx = fakeWx(schoolRoute(), { getImageInfo: ({ success }) => success({ width: 400, height: 640, type: 'png' }) })
    const page = loadPage('guide', deps(wx))
    await page.instance.onLoad()
    expect(text(page)).toContain('从相册选择证件照')
    await page.instance.onAlbum()
    expect(text(page)).toContain('照片须为 JPG 格式；宽度须为 480~1350 像素')
    expect(wx.calls.filter(c => c.api === 'uploadFile')).toHaveLength(0)
  })

  test('a good album photo goes up with source=album', async () => {
    const wx = fakeWx({ ...schoolRoute(), 'POST /api/v1/photos': [202, { photo_id: 'p1', status: 'processing', standardisation_number: 1, standardisations_left_today: 2 }] })
    const page = loadPage('guide', deps(wx))
    await page.instance.onLoad()
    await page.instance.onAlbum()
    expect(wx.calls.find(c => c.api === 'uploadFile').formData).toEqual({ source: 'album' })
    expect(wx.navigations).toEqual(['/pages/result/index?photo_id=p1'])
  })
})

describe('camera (steps 9-10)', () => {
  test('guide bands, helper mode with the rear camera, switch, take, retake, confirm', async () => {
    const wx = fakeWx({ 'POST /api/v1/photos': [202, { photo_id: 'p2' }] })
    const page = loadPage('camera', deps(wx))
    page.instance.onLoad({ helper: '1' })
    await settle()
    expect(page.instance.data.position).toBe('back')
    expect(text(page)).toContain('帮拍模式')
    expect(page.querySelector('.band').dom.getAttribute('style')).toContain('top: 78px') // 78rpx: 50 px of 480 on a 750rpx-wide preview
    page.instance.onSwitch()
    expect(page.instance.data.position).toBe('front')
    await page.instance.onTake()
    await settle()
    expect(text(page)).toContain('确认制作')
    page.instance.onRetake()
    await page.instance.onTake()
    await page.instance.onConfirm()
    expect(wx.calls.find(c => c.api === 'uploadFile')).toMatchObject({ filePath: 'wxfile://shot.jpg', formData: { source: 'camera' } })
    expect(wx.navigations).toEqual(['/pages/result/index?photo_id=p2'])
  })

  test('a refused camera permission explains how to allow it', async () => {
    const wx = fakeWx({}, { authorize: ({ fail }) => fail({ errMsg: 'authorize:fail auth deny' }) })
    const page = loadPage('camera', deps(wx))
    page.instance.onLoad({})
    await settle()
    expect(text(page)).toContain('未获得摄像头权限')
    expect(text(page)).toContain('去设置允许摄像头')
  })

  test('the gateway refusing the source (camera-only school) shows its message', async () => {
    const wx = fakeWx({ 'POST /api/v1/photos': [400, { code: 'capture_source_not_accepted', message: '学校要求使用手机摄像头现场拍摄，不能上传相册照片。' }] })
    const page = loadPage('camera', deps(wx))
    page.instance.onLoad({})
    await page.instance.onTake()
    await page.instance.onConfirm()
    expect(text(page)).toContain('学校要求使用手机摄像头现场拍摄')
  })
})

describe('standardisation result (step 11)', () => {
  test('refusal reasons in Chinese, no slots left, and the cooling-off counting down', async () => {
    jest.useFakeTimers()
    let now = Date.parse('2026-01-01T00:00:00Z')
    const photos = [{ photo_id: 'p1', status: 'rejected', source: 'camera', uploaded_at: 'x', standardisation_number: 3, reasons: ['head_too_small', 'background'], messages: ['人像过小，请靠近一些', '背景不均匀'] }]
    const wx = fakeWx({ 'GET /api/v1/application': [200, view({ photos, quota: { standardisations_left: 0, reopens_at: '2026-01-02T00:00:00Z' } })] })
    const page = loadPage('result', deps(wx, { now: () => now }))
    await page.instance.onLoad({ photo_id: 'p1' })
    expect(text(page)).toContain('人像过小，请靠近一些')
    expect(text(page)).toContain('背景不均匀')
    expect(text(page)).toContain('0 次')
    expect(text(page)).toContain('24:00:00')
    now += 61000
    jest.advanceTimersByTime(1000)
    expect(text(page)).toContain('23:58:59')
    now += 24 * 3600 * 1000
    jest.advanceTimersByTime(1000)
    expect(text(page)).not.toContain('冷静期剩余')
    page.instance.onUnload()
    jest.useRealTimers()
  })

  test('a standardised photo is downloaded with the session and offered for submission', async () => {
    const photos = [{ photo_id: 'p1', status: 'standardized', source: 'camera', uploaded_at: 'x', standardisation_number: 1, image_url: '/api/v1/photos/p1/image' }]
    const wx = fakeWx({ 'GET /api/v1/application': [200, view({ photos, quota: { standardisations_left: 2, reopens_at: null } })] })
    wx.storage.session_token = 'tok'
    const page = loadPage('result', deps(wx))
    await page.instance.onLoad({ photo_id: 'p1' })
    expect(text(page)).toContain('照片符合要求')
    expect(text(page)).toContain('2 次')
    const dl = wx.calls.find(c => c.api === 'downloadFile')
    expect(dl).toMatchObject({ url: 'https://gw.test/api/v1/photos/p1/image', header: { Authorization: 'Bearer tok' } })
    page.instance.onSubmit()
    expect(wx.navigations).toEqual(['/pages/submit/index?photo_id=p1'])
  })
})

describe('submit and compare (steps 12-14)', () => {
  test('the admission photo must be confirmed; subscribe first inside the tap; then status', async () => {
    const wx = fakeWx({
      ...schoolRoute(),
      'POST /api/v1/submissions': [202, { submission_id: 's', photo_id: 'p1', submitted_at: 'x', resubmissions_left: 2 }],
      'GET /api/v1/application': [200, view({ state: 'in_review', match: { score: 91.2, passed: true, photo_id: 'p1' } })],
    })
    const d = deps(wx)
    const page = loadPage('submit', d)
    await page.instance.onLoad({ photo_id: 'p1' })
    expect(wx.calls.filter(c => c.api === 'downloadFile').map(c => c.url.split('gw.test')[1]).sort()).toEqual(['/api/v1/admission-photo', '/api/v1/photos/p1/image'])
    await page.instance.onSubmit()
    expect(text(page)).toContain('请先确认录取照片是本人')
    page.instance.onToggleConfirm()
    await page.instance.onSubmit()
    const order = wx.calls.filter(c => c.api === 'requestSubscribeMessage' || (c.url || '').endsWith('/submissions')).map(c => c.api)
    expect(order).toEqual(['requestSubscribeMessage', 'request'])
    expect(wx.calls.find(c => c.api === 'requestSubscribeMessage').tmplIds).toEqual(['demo_match_result', 'demo_review_result'])
    expect(wx.navigations).toEqual(['/pages/status/index'])
  })

  test('「录取照片不是本人」 opens a support case instead of a comparison', async () => {
    const wx = fakeWx({ ...schoolRoute(), 'POST /api/v1/admission-photo/dispute': [202, { state: 'open' }] })
    const page = loadPage('submit', deps(wx))
    await page.instance.onLoad({ photo_id: 'p1' })
    await page.instance.onNotMe()
    expect(text(page)).toContain('已提交客服处理')
    expect(text(page)).not.toContain('提交照片')
    expect(wx.calls.filter(c => (c.url || '').endsWith('/submissions'))).toHaveLength(0)
    page.instance.onCall()
    expect(wx.calls.find(c => c.api === 'makePhoneCall').phoneNumber).toBe('027-87885551')
  })
})

describe('status (steps 12-14)', () => {
  test('in review: withdraw after a confirmation; rejected: the reason and the free resubmissions', async () => {
    let state = 'in_review'
    const wx = fakeWx({
      'GET /api/v1/application': () => [200, view({ state, next: { action: state === 'in_review' ? 'wait' : 'take_photo', label: state === 'in_review' ? '等待人工审核' : '已撤回' } })],
      'POST /api/v1/submission/withdraw': () => {
        state = 'withdrawn'
        return [200, { state }]
      },
    })
    const page = loadPage('status', deps(wx))
    await page.instance.onShow()
    expect(text(page)).toContain('等待人工审核')
    expect(text(page)).toContain('撤回提交')
    await page.instance.onWithdraw()
    expect(text(page)).toContain('已撤回，可重新拍摄并提交')
    expect(text(page)).toContain('重新拍摄')
    expect(text(page)).not.toContain('撤回提交')
    page.instance.onHide()
  })

  test('rejected and approved views', async () => {
    let v = view({ state: 'rejected', next: { action: 'take_photo', label: '审核未通过，可免费重拍提交' }, last_failure: { code: 'review_rejected', message: '审核未通过：背景不是均匀的浅蓝色或有阴影。可免费重拍提交（剩余1次）。' }, resubmissions_left: 1 })
    const wx = fakeWx({ 'GET /api/v1/application': () => [200, v] })
    const page = loadPage('status', deps(wx))
    await page.instance.onShow()
    expect(text(page)).toContain('审核未通过：背景不是均匀的浅蓝色')
    expect(text(page)).toContain('1 次')
    v = view({ state: 'approved', next: { action: 'done', label: '照片已上传学信网，纸质照片已冲印，等待邮寄' }, delivery: { exported_at: 'x', printed_at: 'y', mailed_at: null } })
    await page.instance.refresh()
    expect(text(page)).toContain('审核通过')
    expect(text(page)).toContain('纸质照片已冲印✓ 已完成')
    expect(text(page)).toContain('已邮寄学籍部门等待中')
  })
})

describe('我的 and FAQ', () => {
  test('unbinding after confirmation', async () => {
    const wx = fakeWx({
      'GET /api/v1/me': [200, { phone: '138****5678', bound: true, student: { masked_name: '赵**', student_number: '21****52', school_name: '示范大学' } }],
      'DELETE /api/v1/me/binding': [200, { phone: '138****5678', bound: false, student: null, application_id: null }],
    })
    const page = loadPage('me', deps(wx))
    await page.instance.onShow()
    expect(text(page)).toContain('赵** 21****52')
    await page.instance.onUnbind()
    expect(text(page)).toContain('未绑定')
    expect(text(page)).not.toContain('解除绑定 ')
  })

  test('FAQ and support from the school configuration', async () => {
    const wx = fakeWx(schoolRoute())
    const page = loadPage('faq', deps(wx))
    await page.instance.onLoad()
    expect(text(page)).toContain('证件号后4位怎么填？')
    expect(text(page)).not.toContain('如有括号也包含在内')
    page.querySelector('.qa').dispatchEvent('tap')
    await settle()
    expect(text(page)).toContain('如有括号也包含在内')
    expect(text(page)).toContain('027-87885551')
    expect(text(page)).toContain('78284566')
  })
})
