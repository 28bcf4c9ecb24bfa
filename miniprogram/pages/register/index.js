const app = getApp()
Page(require('../../logic/register')(app.deps()))
