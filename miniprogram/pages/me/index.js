const app = getApp()
Page(require('../../logic/me')(app.deps()))
