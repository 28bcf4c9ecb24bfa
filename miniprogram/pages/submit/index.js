const app = getApp()
Page(require('../../logic/submit')(app.deps()))
