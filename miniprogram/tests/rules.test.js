const rules = require('../core/rules')

describe('证件号后4位 (the bracket rule)', () => {
  test.each(['1234', '123X', '123x', '2(3)', '2（3）', ' 2 (3) ', '6(A)', '１２３４'])('accepts %s', v => {
    expect(rules.checkIdLast4(v)).toBeNull()
  })
  test.each([
    ['', '请填写'],
    ['123', '4个字符'],
    ['12345', '4个字符'],
    ['23', '4个字符'],
    ['(3)', '括号'],
    ['2(3', '括号'],
    ['2)3(', '括号'],
    ['12(34)', '括号'],
    ['12*4', '4个字符'],
    ['<script>', '4个字符'],
  ])('refuses %p', (v, why) => {
    const reason = rules.checkIdLast4(v)
    expect(reason).toContain(why)
    expect(reason).toContain('01002(3) 填 2(3)')
  })
  test('normalises the way the codec does (NFKC, no spaces, upper case)', () => {
    expect(rules.normaliseIdLast4(' 2（３） ')).toBe('2(3)')
    expect(rules.normaliseIdLast4('123x')).toBe('123X')
  })
})

describe('name and student number', () => {
  test('empty, zero and hostile student numbers are refused with the registrar hint', () => {
    expect(rules.checkStudentNumber('')).toContain('学号')
    expect(rules.checkStudentNumber('0')).toContain('学籍部门')
    expect(rules.checkStudentNumber('21 10')).toContain('数字')
    expect(rules.checkStudentNumber('x'.repeat(33))).toContain('数字')
    expect(rules.checkStudentNumber('2110216052')).toBeNull()
    expect(rules.checkName(' ')).toContain('姓名')
    expect(rules.checkName('赵'.repeat(51))).toContain('过长')
    expect(rules.checkName('赵小明')).toBeNull()
  })
})

describe('album limits (seed step 10)', () => {
  const ok = { width: 480, height: 640, size: 50 * 1024, type: 'jpeg' }
  test('the edges are inside', () => {
    expect(rules.albumProblems(ok)).toEqual([])
    expect(rules.albumProblems({ width: 1350, height: 1800, size: 1024 * 1024, type: 'jpg' })).toEqual([])
  })
  test('each limit is reported with its code and its Chinese text', () => {
    expect(rules.albumProblems({ ...ok, type: 'png' })).toEqual(['format'])
    expect(rules.albumProblems({ ...ok, size: 50 * 1024 - 1 })).toEqual(['file_size'])
    expect(rules.albumProblems({ ...ok, size: 1024 * 1024 + 1 })).toEqual(['file_size'])
    expect(rules.albumProblems({ ...ok, width: 479 })).toEqual(['width'])
    expect(rules.albumProblems({ ...ok, height: 1801 })).toEqual(['height'])
    expect(rules.albumProblems({})).toEqual(['format', 'file_size', 'width', 'height'])
    expect(rules.albumProblemText(['format', 'height'])).toBe('照片须为 JPG 格式；高度须为 640~1800 像素')
  })
})

describe('the guide overlay', () => {
  test('scales the CHSI bands (head top 50-110, eyes 200-300, face 180-300 of 480 x 640)', () => {
    const g = rules.guideGeometry(480)
    expect(g).toMatchObject({ width: 480, height: 640, headTop: { top: 50, height: 60 }, eyes: { top: 200, height: 100 } })
    expect(g.faceOuter).toEqual({ left: 90, width: 300 })
    expect(g.faceInner).toEqual({ left: 150, width: 180 })
    const wide = rules.guideGeometry(750)
    expect(wide.height).toBe(1000)
    expect(wide.eyes.top).toBe(313)
  })
})

describe('the cooling-off countdown', () => {
  const now = Date.parse('2026-01-01T00:00:00Z')
  test('counts down hours, minutes and seconds, then disappears', () => {
    expect(rules.countdown('2026-01-02T00:00:00Z', now)).toBe('24:00:00')
    expect(rules.countdown('2026-01-01T01:02:03+00:00', now)).toBe('01:02:03')
    expect(rules.countdown('2026-01-01T00:00:00Z', now)).toBe('')
    expect(rules.countdown(null, now)).toBe('')
    expect(rules.countdown('not a date', now)).toBe('')
  })
  test('fen to yuan', () => {
    expect(rules.yuan(3500)).toBe('35.00')
  })
})
