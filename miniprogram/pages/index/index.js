const app = getApp()
Page(require('../../logic/index')(app.deps()))
