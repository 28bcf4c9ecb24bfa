const app = getApp()
Page(require('../../logic/result')(app.deps()))
