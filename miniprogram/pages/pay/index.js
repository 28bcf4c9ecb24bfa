const app = getApp()
Page(require('../../logic/pay')(app.deps()))
