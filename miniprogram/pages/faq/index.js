const app = getApp()
Page(require('../../logic/faq')(app.deps()))
