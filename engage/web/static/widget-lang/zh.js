// The widget's words in one more language, loaded by widget.js when a page asks for it.
window.engage.words('zh', {question: '您喜欢这篇文章吗？', yes: '喜欢', no: '不喜欢',
  why: '哪里可以改进？（可选）', thanks: '谢谢，您的投票已记录。',
  removed: '您的投票已撤回。', retry: '暂时无法保存，请稍后再试。',
  related: '相关内容', closed: '投票已结束。', vote: '投票', votes: '票',
  outdated: '内容过时', inaccurate: '不准确', biased: '有偏见', unclear: '不清楚',
  not_relevant: '不相关', data: '我的数据'});
