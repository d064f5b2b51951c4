// The widget's words in one more language, loaded by widget.js when a page asks for it.
window.engage.words('ko', {question: '이 기사가 마음에 드시나요?', yes: '예', no: '아니요',
  why: '어떤 점이 아쉬웠나요? (선택)', thanks: '감사합니다. 투표가 반영되었습니다.',
  removed: '투표를 취소했습니다.', retry: '지금은 저장하지 못했습니다. 잠시 후 다시 시도해 주세요.',
  related: '관련 기사', closed: '마감된 투표입니다.', vote: '투표', votes: '표',
  outdated: '오래된 정보', inaccurate: '부정확함', biased: '편향됨', unclear: '이해하기 어려움',
  not_relevant: '관련 없음', data: '내 데이터'});
